"""Sign-in at the organisation's identity provider: OpenID Connect, authorization code with PKCE.

Authlib's OAuth2 client makes the authorization URL (with `state`, a `nonce` and the S256
challenge of a fresh code verifier) and exchanges the code, refusing a callback whose `state`
is not the one this browser was sent with. The ID token is then verified as the gateway
verifies an identity provider's tokens (PyJWT, the provider's JWKS): signature, issuer, this
client as audience, expiry, and the nonce. The user's roles and organisation come from its
claims (`PONT_OIDC_ROLES_CLAIM`, `PONT_OIDC_ORG_CLAIM`); the access token is what the pages
present to the gateway, which verifies it again. Signing out ends the provider's session too when
it offers an `end_session_endpoint` (register `https://<pages>/signed-out` as a post-logout URL).
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from functools import cached_property
from urllib.parse import urlencode, urljoin

import jwt
import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.requests_client import OAuth2Session

from pont_shared.auth import IDP_ALGORITHMS, Unauthenticated, caller_from_claims, jwks_client
from pont_shared.config import OidcClient

TIMEOUT_SECONDS = 10


class SignInFailed(Exception):
    """The provider's answer could not be trusted or used; the message is safe to log (no token, no claim)."""


@dataclass(frozen=True)
class Started:
    """Where to send the browser, and what this browser's session must keep until it comes back."""

    url: str
    state: str
    nonce: str
    verifier: str


@dataclass(frozen=True)
class SignedIn:
    sub: str
    org: str
    roles: list[str]
    name: str
    access_token: str


class IdentityProvider:
    def __init__(self, client: OidcClient):
        self.client = client

    @cached_property
    def metadata(self) -> dict:
        """The provider's discovery document (fetched once)."""
        response = requests.get(f"{self.client.issuer}/.well-known/openid-configuration", timeout=TIMEOUT_SECONDS)
        response.raise_for_status()
        return response.json()

    def _session(self, state: str | None = None) -> OAuth2Session:
        return OAuth2Session(self.client.client_id, self.client.client_secret, scope=self.client.scope,
                             redirect_uri=self.client.redirect_url, code_challenge_method="S256", state=state)

    def start(self) -> Started:
        verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(24)
        try:
            url, state = self._session().create_authorization_url(
                self.metadata["authorization_endpoint"], code_verifier=verifier, nonce=nonce)
        except (requests.RequestException, KeyError, ValueError) as exc:
            raise SignInFailed(f"the identity provider's discovery document: {type(exc).__name__}") from exc
        return Started(url=url, state=state, nonce=nonce, verifier=verifier)

    def finish(self, query: str, started: Started) -> SignedIn:
        """The user the provider signed in, from its callback's query string; `SignInFailed` if the
        callback is not the answer to `started`, the code is refused, or the ID token does not verify."""
        try:
            token = self._session(state=started.state).fetch_token(
                self.metadata["token_endpoint"], authorization_response=f"{self.client.redirect_url}?{query}",
                code_verifier=started.verifier, timeout=TIMEOUT_SECONDS)
        except AuthlibBaseError as exc:
            raise SignInFailed(f"the provider's answer: {exc.error}") from exc
        except (requests.RequestException, KeyError, ValueError) as exc:
            raise SignInFailed(f"the code exchange: {type(exc).__name__}") from exc
        if "id_token" not in token or "access_token" not in token:
            raise SignInFailed("the provider sent no ID token or no access token")
        try:
            key = jwks_client(self.metadata["jwks_uri"]).get_signing_key_from_jwt(token["id_token"])
            claims = jwt.decode(token["id_token"], key.key, algorithms=IDP_ALGORITHMS, audience=self.client.client_id,
                                issuer=self.client.issuer, options={"require": ["sub", "exp", "iss", "aud", "nonce"]})
            if not secrets.compare_digest(str(claims["nonce"]), started.nonce):
                raise SignInFailed("the ID token's nonce is not this sign-in's")
            caller = caller_from_claims(claims, self.client.roles_claim, self.client.org_claim)
        except (jwt.PyJWTError, Unauthenticated) as exc:
            raise SignInFailed(f"the ID token: {exc}") from exc
        return SignedIn(sub=caller.sub, org=caller.org, roles=sorted(caller.roles),
                        name=str(claims.get("name") or caller.sub), access_token=token["access_token"])

    def end_session_url(self) -> str | None:
        """Where the browser ends its session at the provider too (OpenID Connect RP-Initiated Logout),
        coming back to the pages' /signed-out; None if the provider offers no end_session_endpoint or
        cannot be asked (the pages' own session is ended either way)."""
        try:
            endpoint = self.metadata.get("end_session_endpoint")
        except (requests.RequestException, ValueError):
            return None
        if not endpoint:
            return None
        back = urljoin(self.client.redirect_url, "/signed-out")
        return f"{endpoint}{'&' if '?' in endpoint else '?'}" + urlencode(
            {"client_id": self.client.client_id, "post_logout_redirect_uri": back})
