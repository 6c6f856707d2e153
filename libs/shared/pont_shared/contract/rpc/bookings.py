"""The bookings service's RPC contract: `schedule_session(caller, body: SessionIn, idempotency_key)`.

`SessionIn` is the provider's request body (POST /api/v1/sessions), passed on as it is.
"""
from __future__ import annotations

from datetime import date, time

from pydantic import Field, field_validator

from pont_shared.auth import ORG_PATTERN
from pont_shared.contract.rpc import Request
from pont_shared.contract.rpc.types import Service


class SessionIn(Request):
    """A session in a room on a school site, cut into slots of `slot_minutes`, each for `capacity_per_slot`."""

    site: str = Field(description="the host school's organisation id")
    room: str = Field(min_length=1, max_length=120)
    service: Service
    date: date
    start: time = Field(description="local time at the school, e.g. 09:00 (or with an offset)")
    end: time
    slot_minutes: int = Field(ge=1, le=480)
    capacity_per_slot: int = Field(ge=1, le=500)

    @field_validator("site")
    @classmethod
    def _school(cls, value: str) -> str:
        if not ORG_PATTERN.match(value) or not value.startswith("school:"):
            raise ValueError("site must be a school organisation id, e.g. school:6612001")
        return value

    @field_validator("room")
    @classmethod
    def _room(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a room is needed")
        return value.strip()
