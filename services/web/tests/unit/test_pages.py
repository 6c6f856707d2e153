"""The pages' own rules that need no gateway: development-only sign-in, CSRF on every form POST."""
from __future__ import annotations

from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from pont_shared.config import Settings
from web.cookies import SESSION_COOKIE
from web.pages import Web, inbox_order


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


def test_the_inbox_puts_what_awaits_a_decision_first_then_the_most_urgent_then_the_longest_waiting():
    def item(key, status, urgency, received_at):
        return {"id": key, "status": status, "received_at": received_at,
                "content": {"referral": {"urgency": urgency}}}

    inbox = [item("closed", "closed", "safeguarding", "2027-01-01"),
             item("accepted", "accepted", "urgent", "2027-01-01"),
             item("routine-old", "received", "routine", "2027-01-01"),
             item("urgent-new", "received", "urgent", "2027-01-09"),
             item("urgent-old", "received", "urgent", "2027-01-02"),
             item("erased", "received", None, "2027-01-01")]

    assert [i["id"] for i in sorted(inbox, key=inbox_order)] == [
        "urgent-old", "urgent-new", "routine-old", "erased", "accepted", "closed"]


def test_referral_pages_refuse_a_role_that_may_not_use_them_before_asking_the_gateway():
    pages = web("development")
    first = pages.sign_in(request("GET", "/sign-in"))
    cookie = first.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    csrf = pages.sessions.load(cookie)["csrf"]
    signed_in = pages.sign_in(request("POST", "/sign-in", data={"user": "teacher", "csrf": csrf},
                                      headers={"Cookie": f"{SESSION_COOKIE}={cookie}"}))
    headers = {"Cookie": signed_in.headers["Set-Cookie"].split(";")[0], "Accept-Language": "cy"}

    inbox = pages.inbox(request("GET", "/inbox", headers=headers))
    accept = pages.referral_action(request("POST", "/referrals/r1/accept", data={"csrf": csrf}, headers=headers),
                                   "r1", "accept")
    unknown = pages.referral_action(request("POST", "/referrals/r1/approve", data={"csrf": csrf}, headers=headers),
                                    "r1", "approve")

    assert (inbox.status_code, accept.status_code, unknown.status_code) == (403, 403, 404)
    assert "Dim caniatâd" in inbox.get_data(as_text=True)
