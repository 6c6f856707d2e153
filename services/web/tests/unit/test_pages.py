"""The pages' own rules that need no gateway: development-only sign-in, CSRF on every form POST."""
from __future__ import annotations

from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from pont_shared.config import Settings
from web.cookies import SESSION_COOKIE
from web.pages import Web


def web(environment: str) -> Web:
    return Web(Settings.from_env("web", {"PONT_ENV": environment, "PONT_AGENCIES": "school:1,health:h"}))


def request(method: str, path: str, **kwargs) -> Request:
    return Request(EnvironBuilder(method=method, path=path, **kwargs).get_environ())


def test_outside_development_there_is_no_demonstration_sign_in():
    pages = web("production")
    assert pages.sign_in(request("GET", "/sign-in")).status_code == 404
    assert pages.sign_in(request("POST", "/sign-in", data={"user": "nurse"})).status_code == 404


def test_in_development_the_demonstration_people_are_in_the_configured_organisations():
    pages = web("development")
    page = pages.sign_in(request("GET", "/sign-in", headers={"Accept-Language": "cy"}))
    body = page.get_data(as_text=True)
    assert page.status_code == 200 and '<html lang="cy">' in body and "Nyrs ysgol, health:h" in body
    assert {(u.key, u.org) for u in pages.demo_users} >= {("nurse", "health:h"), ("dsl", "school:1")}


def test_a_sign_in_without_the_session_csrf_token_is_refused_and_with_it_signs_in():
    pages = web("development")
    first = pages.sign_in(request("GET", "/sign-in"))
    cookie = first.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    csrf = pages.sessions.load(cookie)["csrf"]
    headers = {"Cookie": f"{SESSION_COOKIE}={cookie}"}

    refused = pages.sign_in(request("POST", "/sign-in", data={"user": "nurse"}, headers=headers))
    signed_in = pages.sign_in(request("POST", "/sign-in", data={"user": "nurse", "csrf": csrf}, headers=headers))

    assert refused.status_code == 403
    assert signed_in.status_code == 303 and signed_in.headers["Location"] == "/"
    session = pages.sessions.load(signed_in.headers["Set-Cookie"].split(";")[0].split("=", 1)[1])
    assert session["user"]["org"] == "health:h" and session["user"]["token"] and session["csrf"] == csrf
