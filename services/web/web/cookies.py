"""The signed-in session: a signed, HttpOnly, SameSite=Lax cookie holding the user's bearer token.

The cookie is signed with a key derived from `PONT_JWT_SECRET` (its own salt), so it cannot
be forged or altered; it is also where the CSRF token of every form lives.
"""
from __future__ import annotations

import hmac
import secrets

from itsdangerous import BadSignature, URLSafeTimedSerializer

SESSION_COOKIE = "pont_session"
LANGUAGE_COOKIE = "pont_lang"
MAX_AGE_SECONDS = 8 * 3600  # as long as a development token lives


class Sessions:
    def __init__(self, secret: str):
        self._serializer = URLSafeTimedSerializer(secret, salt="pont-web-session")

    def load(self, raw: str | None) -> dict:
        """The session in the cookie, or a new anonymous one (with its own CSRF token)."""
        if raw:
            try:
                session = self._serializer.loads(raw, max_age=MAX_AGE_SECONDS)
                if isinstance(session, dict) and isinstance(session.get("csrf"), str):
                    return session
            except BadSignature:
                pass
        return {"csrf": secrets.token_urlsafe(32)}

    def dump(self, session: dict) -> str:
        return self._serializer.dumps(session)


def csrf_ok(session: dict, submitted: str | None) -> bool:
    return bool(submitted) and hmac.compare_digest(session["csrf"], submitted)


def cookie_options(secure: bool) -> dict:
    return {"httponly": True, "samesite": "Lax", "secure": secure, "path": "/"}
