"""Bearer tokens: HS256 JWTs with `sub`, `org`, `roles`, `exp` (API.md, Conventions), and an
identity provider's RS256/ES256 tokens verified against its JWKS (`PONT_OIDC_*`, README).

`python -m pont_shared.auth --sub nurse1 --org health:cardiff-vale --roles school_nurse`
mints a development token.
"""
from __future__ import annotations

import argparse
import re
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import jwt

if TYPE_CHECKING:
    from pont_shared.config import OidcSettings

STAFF_ROLES = frozenset({
    "school_staff", "dsl", "transition_lead", "school_nurse", "health_practitioner",
    "social_worker", "youth_worker", "admin",
})
# a parent, carer or young person, of the school that invited them: only the family routes serve them
FAMILY_ROLE = "family"
ROLES = STAFF_ROLES | {FAMILY_ROLE}
ORG_KINDS = ("school", "health", "social_care", "youth_work", "local_authority")
ORG_PATTERN = re.compile(r"^(school|health|social_care|youth_work|local_authority):[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class Unauthenticated(Exception):
    """No token, or one that is malformed, badly signed or expired."""


@dataclass(frozen=True)
class Caller:
    """The authenticated user behind a request."""

    sub: str
    org: str
    roles: frozenset[str]
    assertion: str = ""  # the gateway's signed assertion of this caller, for services (pont_shared.contract.caller)

    def has_any(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))

    @property
    def org_kind(self) -> str:
        return self.org.split(":", 1)[0]


IDP_ALGORITHMS = ["RS256", "ES256"]


def verify(authorization: str | None, secret: str, oidc: OidcSettings | None = None) -> Caller:
    """The caller of an `Authorization: Bearer <JWT>` header, or `Unauthenticated`.

    An HS256 token is checked with `secret`; an RS256/ES256 one, if an identity provider is
    configured, with its JWKS key named by `kid` (and its `iss` and `aud`). Nothing else is accepted.
    """
    if not authorization or not authorization.startswith("Bearer "):
        raise Unauthenticated("missing bearer token")
    token = authorization[len("Bearer "):].strip()
    try:
        algorithm = jwt.get_unverified_header(token).get("alg")
        if algorithm == "HS256":
            claims = jwt.decode(token, secret, algorithms=["HS256"],
                                options={"require": ["sub", "org", "roles", "exp"]})
            return caller_from_claims(claims, "roles", "org")
        if oidc is not None and algorithm in IDP_ALGORITHMS:
            key = jwks_client(oidc.jwks_url, oidc.refresh_cooldown_seconds).get_signing_key_from_jwt(token)
            claims = jwt.decode(token, key.key, algorithms=IDP_ALGORITHMS, audience=oidc.audience,
                                issuer=oidc.issuer, options={"require": ["sub", "exp", "iss", "aud"]})
            return caller_from_claims(claims, oidc.roles_claim, oidc.org_claim)
    except jwt.ExpiredSignatureError as exc:
        raise Unauthenticated("token expired") from exc
    except jwt.PyJWTError as exc:
        raise Unauthenticated("invalid token") from exc
    raise Unauthenticated("invalid token: unsupported algorithm")


@lru_cache(maxsize=4)
def jwks_client(url: str, refresh_cooldown_seconds: float = 30.0) -> jwt.PyJWKClient:
    """One key cache per identity provider and process: the key set is kept for 5 minutes and fetched
    again on an unknown `kid` (a rotation), at most once per cooldown (so forged kids cannot flood the IdP)."""
    return jwt.PyJWKClient(url, cache_keys=True, lifespan=300, timeout=5,
                           cooldown_duration=refresh_cooldown_seconds)


def _claim(claims: dict, name: str):
    """A claim by name; a dotted name reaches into objects (e.g. Keycloak's `realm_access.roles`)."""
    value = claims
    for part in name.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def caller_from_claims(claims: dict, roles_claim: str, org_claim: str) -> Caller:
    """The caller a token's verified claims name; `Unauthenticated` if its roles or organisation are malformed."""
    roles = _claim(claims, roles_claim)
    org = _claim(claims, org_claim)
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise Unauthenticated("invalid token: roles must be a list")
    if not isinstance(org, str) or not ORG_PATTERN.match(org):
        raise Unauthenticated("invalid token: org must be <kind>:<code>")
    return Caller(sub=str(claims["sub"]), org=org, roles=frozenset(roles))


def mint(sub: str, org: str, roles: list[str], secret: str, *, ttl_seconds: int = 8 * 3600) -> str:
    """A signed token for development and tests."""
    now = int(time.time())
    return jwt.encode({"sub": sub, "org": org, "roles": list(roles), "iat": now, "exp": now + ttl_seconds},
                      secret, algorithm="HS256")


def main(argv: list[str] | None = None) -> None:
    from pont_shared.config import Settings

    parser = argparse.ArgumentParser(description="Mint a development token for Pont's gateway.")
    parser.add_argument("--sub", required=True)
    parser.add_argument("--org", required=True)
    parser.add_argument("--roles", required=True, help="comma-separated")
    parser.add_argument("--ttl", type=int, default=8 * 3600)
    args = parser.parse_args(argv)
    settings = Settings.from_env("gateway")
    print(mint(args.sub, args.org, args.roles.split(","), settings.jwt_secret, ttl_seconds=args.ttl))


if __name__ == "__main__":
    main()
