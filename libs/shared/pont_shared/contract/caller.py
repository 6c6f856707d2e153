"""Who a service is working for: the caller, asserted by the gateway and verified by every service.

The gateway authenticates a user's bearer token and passes the user on to services as a
*caller assertion*: a JWT with `sub`, `org` and `roles`, signed with Ed25519 (EdDSA) by the
gateway's private key (`PONT_CALLER_SIGNING_KEY`), valid for `ASSERTION_SECONDS`. Every
service verifies it with the public key (`PONT_CALLER_VERIFY_KEY`) before a method runs
(`pont_shared.messaging.rpc.Rpc`), so a hand-written `{"roles": ["dsl"]}` is refused. The key
is asymmetric so that the processes which must verify — every agency's `agency_link` among
them — cannot mint one.

A service that later works for a user it recorded (referrals asking consent, on a
`consent.granted`, to share the referral its raiser made) has no assertion to send; it sends
the claims as they are, and vouches for them itself. Only a method that names the services it
trusts to vouch (`@rpc(vouched_by=...)`) accepts that, and only from those services' broker
users, which RabbitMQ authenticates (`user_id`).

Keys are the raw 32 bytes, base64: `python -m pont_shared.contract.caller` prints a new pair.
"""
from __future__ import annotations

import base64
import hashlib
import time

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from nameko.exceptions import deserialize_to_instance
from pydantic import BaseModel, ConfigDict, Field, ValidationError

ASSERTION_SECONDS = 120  # longer than any RPC deadline (the gateway's is 30 s)
CLOCK_SKEW_SECONDS = 30
ISSUER = "pont-gateway"
AUDIENCE = "pont-services"
ALGORITHM = "EdDSA"


@deserialize_to_instance
class CallerRefused(Exception):
    """An RPC request whose caller is missing, forged, expired, or vouched for by a sender not trusted to."""


class CallerClaims(BaseModel):
    """The caller every service method that acts for someone receives (as a dict)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sub: str = Field(min_length=1, max_length=200)
    org: str = Field(pattern=r"^[a-z_]+:[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    roles: list[str] = Field(max_length=20)


def _raw(key_b64: str) -> bytes:
    raw = base64.b64decode(key_b64.strip(), validate=True)
    if len(raw) != 32:
        raise ValueError("an Ed25519 key is 32 bytes")
    return raw


def public_key_of(signing_key_b64: str) -> str:
    private = Ed25519PrivateKey.from_private_bytes(_raw(signing_key_b64))
    return base64.b64encode(private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def new_signing_key() -> str:
    key = Ed25519PrivateKey.generate()
    return base64.b64encode(key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())).decode()


# development only (PONT_ENV=development): outside it, both are refused (config.check_secrets)
DEV_CALLER_SIGNING_KEY = base64.b64encode(hashlib.sha256(b"pont-development-caller-key").digest()).decode()
DEV_CALLER_VERIFY_KEY = public_key_of(DEV_CALLER_SIGNING_KEY)


class CallerSigner:
    """The gateway's: turns an authenticated user into an assertion services will accept."""

    def __init__(self, signing_key_b64: str, seconds: float = ASSERTION_SECONDS):
        self._key = Ed25519PrivateKey.from_private_bytes(_raw(signing_key_b64))
        self.seconds = seconds

    def sign(self, sub: str, org: str, roles, now: float | None = None) -> str:
        issued = int(time.time() if now is None else now)
        claims = {"sub": sub, "org": org, "roles": sorted(roles), "iss": ISSUER, "aud": AUDIENCE,
                  "iat": issued, "exp": issued + int(self.seconds)}
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)


class CallerVerifier:
    """Every service's: the claims of a valid assertion (a dict: sub, org, roles), or `CallerRefused`."""

    def __init__(self, verify_key_b64: str):
        self._key = Ed25519PublicKey.from_public_bytes(_raw(verify_key_b64))

    def verify(self, assertion: str) -> dict:
        try:
            claims = jwt.decode(assertion, self._key, algorithms=[ALGORITHM], audience=AUDIENCE, issuer=ISSUER,
                                leeway=CLOCK_SKEW_SECONDS, options={"require": ["sub", "org", "roles", "exp", "iat"]})
        except jwt.ExpiredSignatureError:
            raise CallerRefused("the caller assertion has expired") from None
        except jwt.PyJWTError:
            raise CallerRefused("the caller assertion is not valid") from None
        return checked({k: claims[k] for k in ("sub", "org", "roles")})


def checked(claims: dict) -> dict:
    """`claims` if they have the shape of a caller, else `CallerRefused` (never echoing them)."""
    try:
        return CallerClaims.model_validate(claims).model_dump()
    except ValidationError:
        raise CallerRefused("the caller's claims are not a caller (sub, org, roles)") from None


if __name__ == "__main__":
    signing = new_signing_key()
    print(f"PONT_CALLER_SIGNING_KEY={signing}  # the gateway only\nPONT_CALLER_VERIFY_KEY={public_key_of(signing)}")
