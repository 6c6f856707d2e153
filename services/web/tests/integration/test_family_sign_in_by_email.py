"""Development's sign-in for families: a link sent by email (to a real local SMTP sink), used once."""
from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from pont_shared.config import Settings
from pont_shared.testing import smtp_sink, wait_until
from web import family_pages
from web.cookies import SESSION_COOKIE
from web.pages import Web

pytestmark = pytest.mark.integration
SCHOOL = "school:6612001"


def request(method: str, path: str, cookie: str | None = None, **kwargs) -> Request:
    headers = {"Accept-Language": "cy", **({"Cookie": f"{SESSION_COOKIE}={cookie}"} if cookie else {})}
    return Request(EnvironBuilder(method=method, path=path, headers=headers, base_url="http://pont.test/",
                                  **kwargs).get_environ())


def cookie_of(response) -> str:
    return response.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]


def test_a_parent_gets_a_link_in_welsh_that_signs_them_in_once_as_a_pseudonym_of_their_address():
    with smtp_sink() as sink:
        web = Web(Settings.from_env("web", {"PONT_ENV": "development", "PONT_SMTP_URL": sink.url,
                                            "PONT_AGENCIES": f"{SCHOOL},health:h"}))
        cookie = cookie_of(web.sign_in(request("GET", "/sign-in")))
        csrf = web.sessions.load(cookie)["csrf"]
        bad = family_pages.email_sign_in(web, request("POST", "/sign-in/email", cookie, data={
            "csrf": csrf, "email": "not an address", "school": SCHOOL}))
        sent = family_pages.email_sign_in(web, request("POST", "/sign-in/email", cookie, data={
            "csrf": csrf, "email": "Rhian@Example.cymru", "school": SCHOOL}))
        [message] = wait_until(lambda: sink.messages(), timeout=10)

    assert bad.status_code == 422 and 'id="email-error"' in bad.get_data(as_text=True)
    assert sent.status_code == 200 and "Edrychwch ar eich e-bost" in sent.get_data(as_text=True)
    assert message["To"] == "Rhian@Example.cymru" and message["Subject"] == "Mewngofnodi i Pont"
    link = urlsplit(re.search(r"http://pont\.test/sign-in/email\?\S+", message.get_payload(decode=True).decode())[0])
    signed_in = family_pages.email_link(web, request("GET", link.path, query_string=link.query))
    again = family_pages.email_link(web, request("GET", link.path, query_string=link.query))
    altered = family_pages.email_link(web, request("GET", link.path, query_string=link.query[:-3] + "abc"))

    assert signed_in.status_code == 303 and signed_in.headers["Location"] == "/family"
    user = web.sessions.load(cookie_of(signed_in))["user"]
    assert (user["org"], user["roles"]) == (SCHOOL, ["family"])
    assert user["sub"].startswith("family-") and "rhian" not in user["sub"].lower()
    assert again.status_code == 403 and altered.status_code == 403


def test_outside_development_there_is_no_sign_in_by_email():
    web = Web(Settings.from_env("web", {"PONT_ENV": "production", "PONT_AGENCIES": SCHOOL}))

    assert family_pages.email_link(web, request("GET", "/sign-in/email", query_string="token=x")).status_code == 404
