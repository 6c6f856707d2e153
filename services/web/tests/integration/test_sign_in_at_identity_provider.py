"""Signing in at the organisation's identity provider: OpenID Connect, authorization code with PKCE.

The provider is a real HTTP server of the test's own (`pont_shared.testing.identity_provider`):
discovery, JWKS, an authorization endpoint that signs its one user in at once, and a token
endpoint that checks the client, the redirect URL and the PKCE verifier against the challenge,
and honours each code once. The pages' side is the web service's own code (`Web`), driven as a
browser would be.
"""
from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest
import requests
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from pont_shared.auth import verify
from pont_shared.config import OidcSettings, Settings
from pont_shared.testing.identity_provider import API_AUDIENCE, CLIENT_ID, REDIRECT_URL, Provider
from web.cookies import SESSION_COOKIE
from web.gateway import Answer
from web.pages import Web

pytestmark = pytest.mark.integration


@pytest.fixture
def provider():
    running = Provider()
    yield running
    running.close()


def pages(issuer: str) -> Web:
    return Web(Settings.from_env("web", {
        "PONT_ENV": "production", "PONT_OIDC_ISSUER": issuer, "PONT_OIDC_CLIENT_ID": CLIENT_ID,
        "PONT_OIDC_REDIRECT_URL": REDIRECT_URL}))


def get(path: str, cookie: str | None = None, query: str = "") -> Request:
    headers = {"Cookie": f"{SESSION_COOKIE}={cookie}"} if cookie else {}
    return Request(EnvironBuilder(method="GET", path=path, query_string=query, headers=headers).get_environ())


def cookie_of(response) -> str:
    return response.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]


def start(web: Web) -> tuple[str, str]:
    """A browser asks to sign in: (its session cookie, the provider's authorization URL it is sent to)."""
    response = web.sign_in(get("/sign-in"))
    assert response.status_code == 303
    return cookie_of(response), response.headers["Location"]


def at_provider(authorization_url: str) -> str:
    """The provider signs its user in: the query of the callback it sends the browser back with."""
    answer = requests.get(authorization_url, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    return urlsplit(answer.headers["Location"]).query


def signed_in_user(web: Web, response) -> dict | None:
    """Whom a response signs in: the user of the session it sets (None if it sets none)."""
    if "Set-Cookie" not in response.headers:
        return None
    return web.sessions.load(cookie_of(response)).get("user")


def test_signing_in_at_the_provider_gives_the_roles_and_organisation_its_token_names(provider):
    web = pages(provider.url)
    cookie, authorization_url = start(web)
    asked = parse_qs(urlsplit(authorization_url).query)
    assert asked["code_challenge_method"] == ["S256"] and asked["code_challenge"] and asked["nonce"]

    response = web.sign_in_callback(get("/sign-in/callback", cookie, at_provider(authorization_url)))

    assert response.status_code == 303 and response.headers["Location"] == "/"
    user = signed_in_user(web, response)
    assert (user["sub"], user["org"], user["roles"], user["label"]) == (
        "nurse-7", "health:cardiff-vale", ["school_nurse"], "Nyrs Saith")
    # the pages present the provider's access token, which the gateway verifies against the same provider
    caller = verify(f"Bearer {user['token']}", "unused",
                    OidcSettings(jwks_url=f"{provider.url}/jwks", issuer=provider.url, audience=API_AUDIENCE))
    assert (caller.org, caller.roles) == ("health:cardiff-vale", frozenset({"school_nurse"}))
    assert web.home(get("/", cookie_of(response))).headers["Location"] == "/sessions"   # a nurse's work queue


def test_a_family_member_signs_in_at_the_same_provider_and_lands_on_their_childrens_page(provider):
    provider.user.update(sub="rhiant-3", name="Rhian Morgan", org="school:6612001", roles=["family"])
    web = pages(provider.url)
    cookie, authorization_url = start(web)

    response = web.sign_in_callback(get("/sign-in/callback", cookie, at_provider(authorization_url)))

    user = signed_in_user(web, response)
    assert (user["sub"], user["org"], user["roles"]) == ("rhiant-3", "school:6612001", ["family"])
    assert web.home(get("/", cookie_of(response))).headers["Location"] == "/family"


def signed_in_at(web: Web) -> str:
    """A browser signed in at the provider: its session cookie."""
    cookie, authorization_url = start(web)
    return cookie_of(web.sign_in_callback(get("/sign-in/callback", cookie, at_provider(authorization_url))))


def sign_out(web: Web, cookie: str):
    csrf = web.sessions.load(cookie)["csrf"]
    return web.sign_out(Request(EnvironBuilder(method="POST", path="/sign-out", data={"csrf": csrf},
                                               headers={"Cookie": f"{SESSION_COOKIE}={cookie}"}).get_environ()))


def test_signing_out_ends_the_providers_session_too_and_comes_back_to_signed_out(provider):
    web = pages(provider.url)

    response = sign_out(web, signed_in_at(web))
    at_provider_end = requests.get(response.headers["Location"], allow_redirects=False, timeout=10)

    # the provider ends its own session (RP-initiated logout), so /sign-in will not sign the user straight back in
    assert response.status_code == 303 and response.headers["Location"].startswith(f"{provider.url}/end-session?")
    assert at_provider_end.status_code == 302 and at_provider_end.headers["Location"] == \
        "https://pont.example/signed-out"
    assert provider.ended == 1
    assert signed_in_user(web, response) is None
    assert web.home(get("/", cookie_of(response))).headers["Location"] == "/sign-in"
    page = web.signed_out(Request(EnvironBuilder(method="GET", path="/signed-out",
                                                 headers={"Accept-Language": "cy"}).get_environ()))
    assert page.status_code == 200 and "Rydych wedi allgofnodi o Pont" in page.get_data(as_text=True)


def test_signing_out_at_a_provider_without_an_end_session_endpoint_ends_on_signed_out(provider):
    provider.ends_sessions = False
    web = pages(provider.url)

    response = sign_out(web, signed_in_at(web))

    # not to /sign-in, which would go straight back to the provider and sign the user in again
    assert response.status_code == 303 and response.headers["Location"] == "/signed-out"
    assert signed_in_user(web, response) is None and provider.ended == 0


class ExpiredTokens:
    """A gateway to which every token has expired (401), as the real one answers then."""

    def call(self, method, path, token, body=None, idempotency_key=None):
        return Answer(401, {"title": "the token has expired"})


def test_when_the_token_expires_the_user_signs_in_again_and_comes_back_to_the_page_they_were_on(provider):
    web = pages(provider.url)
    cookie = signed_in_at(web)
    web.gateway = ExpiredTokens()

    inbox = web.inbox(get("/inbox", cookie, "kind=referral"))   # the nurse's referrals inbox

    assert inbox.status_code == 303 and inbox.headers["Location"] == "/sign-in"
    assert signed_in_user(web, inbox) is None
    again, authorization_url = start_from(web, cookie_of(inbox))
    back = web.sign_in_callback(get("/sign-in/callback", again, at_provider(authorization_url)))
    assert back.status_code == 303 and back.headers["Location"] == "/inbox?kind=referral"
    assert signed_in_user(web, back)["sub"] == "nurse-7"


def start_from(web: Web, cookie: str) -> tuple[str, str]:
    response = web.sign_in(get("/sign-in", cookie))
    assert response.status_code == 303
    return cookie_of(response), response.headers["Location"]


def test_an_answer_to_another_browsers_sign_in_is_refused(provider):
    web = pages(provider.url)
    mine, _ = start(web)
    _, theirs = start(web)

    response = web.sign_in_callback(get("/sign-in/callback", mine, at_provider(theirs)))

    assert response.status_code == 403 and signed_in_user(web, response) is None
    assert "sign-in did not complete" in response.get_data(as_text=True)


def test_an_answer_whose_state_was_changed_is_refused(provider):
    web = pages(provider.url)
    cookie, authorization_url = start(web)
    answer = parse_qs(at_provider(authorization_url))

    response = web.sign_in_callback(get("/sign-in/callback", cookie, urlencode(
        {"code": answer["code"][0], "state": "forged-" + answer["state"][0]})))

    assert response.status_code == 403 and signed_in_user(web, response) is None


def test_an_answer_is_used_once(provider):
    web = pages(provider.url)
    cookie, authorization_url = start(web)
    callback = at_provider(authorization_url)
    first = web.sign_in_callback(get("/sign-in/callback", cookie, callback))

    replayed_with_the_old_session = web.sign_in_callback(get("/sign-in/callback", cookie, callback))
    replayed_with_the_new_one = web.sign_in_callback(get("/sign-in/callback", cookie_of(first), callback))

    assert signed_in_user(web, first) is not None
    for replayed in (replayed_with_the_old_session, replayed_with_the_new_one):
        assert replayed.status_code == 403 and signed_in_user(web, replayed) is None


def test_a_challenge_changed_on_the_way_to_the_provider_fails_the_code_exchange(provider):
    web = pages(provider.url)
    cookie, authorization_url = start(web)
    parts = urlsplit(authorization_url)
    asked = {name: values[0] for name, values in parse_qs(parts.query).items()}
    forged = urlunsplit(parts._replace(query=urlencode({**asked, "code_challenge": "A" * 43})))

    response = web.sign_in_callback(get("/sign-in/callback", cookie, at_provider(forged)))

    assert response.status_code == 403 and signed_in_user(web, response) is None


@pytest.mark.parametrize("change", [{"aud": "another-client"}, {"nonce": "another-sign-in"},
                                    {"iss": "https://another-provider.example"}, {"exp": 1_000_000},
                                    {"org": "not an organisation"}, {"roles": "school_nurse"}],
                         ids=["audience", "nonce", "issuer", "expired", "organisation", "roles"])
def test_an_id_token_that_is_not_for_this_sign_in_is_refused(provider, change):
    provider.id_token_changes = change
    web = pages(provider.url)
    cookie, authorization_url = start(web)

    response = web.sign_in_callback(get("/sign-in/callback", cookie, at_provider(authorization_url)))

    assert response.status_code == 403 and signed_in_user(web, response) is None


def test_a_provider_that_cannot_be_reached_is_said_so_in_welsh_too():
    web = pages("http://127.0.0.1:1")
    request = Request(EnvironBuilder(method="GET", path="/sign-in", headers={"Accept-Language": "cy"}).get_environ())

    response = web.sign_in(request)

    assert response.status_code == 502
    assert "Ni ellir cyrraedd mewngofnodi eich sefydliad" in response.get_data(as_text=True)


@pytest.mark.parametrize("kept", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "", None, 7])
def test_only_a_path_on_these_pages_is_gone_back_to_after_signing_in(kept):
    from web.pages import _local

    assert _local(kept) == "/"
    assert _local("/inbox?kind=referral") == "/inbox?kind=referral"
