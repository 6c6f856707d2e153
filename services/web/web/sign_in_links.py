"""Development's sign-in for families: a link by email, signed with a key derived from `PONT_JWT_SECRET`
(its own salt), good for 15 minutes and used once (in this process). The family member is known by a
pseudonym of their address, never the address itself."""
from __future__ import annotations

import hashlib
import hmac
import secrets

from itsdangerous import BadSignature, URLSafeTimedSerializer

LINK_MINUTES = 15


class SignInLinks:
    def __init__(self, secret: str):
        self._serializer = URLSafeTimedSerializer(secret, salt="pont-family-sign-in-link")
        self._pseudonyms = hmac.new(secret.encode(), b"pont-family-member", hashlib.sha256).digest()
        self._spent: set[str] = set()

    def make(self, email: str, school: str) -> str:
        return self._serializer.dumps({"email": email.lower(), "school": school, "once": secrets.token_urlsafe(16)})

    def use(self, token: str) -> tuple[str, str] | None:
        """(the member's pseudonym, their school), or None: altered, too old, or used already."""
        try:
            claims = self._serializer.loads(token, max_age=LINK_MINUTES * 60)
        except BadSignature:
            return None
        if not isinstance(claims, dict) or claims.get("once") in self._spent:
            return None
        self._spent.add(claims["once"])
        member = "family-" + hmac.new(self._pseudonyms, claims["email"].encode(), hashlib.sha256).hexdigest()[:24]
        return member, claims["school"]
