"""Bearer tokens: HS256 JWTs with `sub`, `org`, `roles`, `exp` (API.md, Conventions).

`python -m pont_shared.auth --sub nurse1 --org health:cardiff-vale --roles school_nurse`
mints a development token.
"""
from __future__ import annotations

import argparse
import re
import time
from dataclasses import dataclass

import jwt

ROLES = frozenset({
    "school_staff", "dsl", "transition_lead", "school_nurse", "health_practitioner",
    "social_worker", "youth_worker", "admin",
})
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

    def has_any(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))

    @property
    def org_kind(self) -> str:
        return self.org.split(":", 1)[0]


def verify(authorization: str | None, secret: str) -> Caller:
    """The caller of an `Authorization: Bearer <JWT>` header, or `Unauthenticated`."""
    if not authorization or not authorization.startswith("Bearer "):
        raise Unauthenticated("missing bearer token")
    token = authorization[len("Bearer "):].strip()
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], options={"require": ["sub", "org", "roles", "exp"]})
    except jwt.ExpiredSignatureError as exc:
        raise Unauthenticated("token expired") from exc
    except jwt.PyJWTError as exc:
        raise Unauthenticated("invalid token") from exc
    roles = claims.get("roles")
    org = claims.get("org")
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
