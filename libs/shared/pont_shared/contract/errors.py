"""Errors services raise across RPC; the gateway maps each to one HTTP status.

Each is registered with nameko so the gateway receives the same class, not a generic
RemoteError.
"""
from __future__ import annotations

from nameko.exceptions import deserialize_to_instance


@deserialize_to_instance
class NotFound(Exception):
    """Unknown id — or a resource of another organisation the caller may not see."""


@deserialize_to_instance
class Conflict(Exception):
    """The request clashes with the current state (full slot, open duplicate, taken room)."""


@deserialize_to_instance
class Forbidden(Exception):
    """A valid caller who is not allowed to do this."""


@deserialize_to_instance
class Invalid(Exception):
    """Input the domain rejects; args[1] is a list of {field, message}."""

    def __init__(self, detail: str, errors: list[dict] | None = None):
        super().__init__(detail, errors or [])

    @property
    def errors(self) -> list[dict]:
        return self.args[1]
