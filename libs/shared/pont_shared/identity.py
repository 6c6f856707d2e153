"""Who a child is across Pont: UPN validation and the `child_ref` pseudonym."""
from __future__ import annotations

import hashlib
import hmac
import re

CHECK_LETTERS = "ABCDEFGHJKLMNPQRTUVWXYZ"  # DfE UPN check letters: no I, O or S
_UPN_SHAPE = re.compile(r"^[A-Z]\d{12}$")


def upn_check_letter(body: str) -> str:
    """The check letter for the 12 characters after it (weights 2..13, modulo 23)."""
    total = sum(int(ch) * weight for weight, ch in enumerate(body, start=2))
    return CHECK_LETTERS[total % 23]


def upn_problem(upn: str) -> str | None:
    """Why `upn` is not a valid UPN, or None when it is."""
    if not isinstance(upn, str) or not _UPN_SHAPE.match(upn):
        return "a UPN is 13 characters: a letter then 12 digits"
    if upn[0] != upn_check_letter(upn[1:]):
        return "the UPN's check letter does not match its digits"
    return None


def child_ref(upn: str, secret: str) -> str:
    """A stable pseudonym for a pupil: HMAC-SHA256 of the UPN under the platform key.

    Every service derives the same ref from the same UPN without a central registry; the
    UPN cannot be recovered from it without the key.
    """
    digest = hmac.new(secret.encode(), upn.upper().encode(), hashlib.sha256).hexdigest()
    return f"c_{digest[:32]}"


def make_upn(serial: int, prefix: str = "661") -> str:
    """A valid UPN for tests and demos (LA prefix + 9-digit serial)."""
    body = f"{prefix}{serial:09d}"[-12:]
    return upn_check_letter(body) + body
