"""The bookings service's RPC contract. Each method takes the caller (the gateway's assertion) first:

- `schedule_session(caller, body: SessionIn, idempotency_key)` → `SessionView`
  (`SessionIn` is the provider's request body, POST /api/v1/sessions, passed on as it is);
- `get_session(caller, session_id)` → `SessionView`; `list_sessions(caller)` → [`SessionView`];
- `book_appointment(caller, request: BookAppointment, idempotency_key)` → `AppointmentView`;
- `cancel_appointment(caller, appointment_id, request: CancelAppointment)`,
  `record_attended(caller, appointment_id)`, `record_was_not_brought(caller, appointment_id)`
  → `AppointmentView` (with the site).
"""
from __future__ import annotations

from datetime import date, time
from typing import Annotated

from pydantic import Field, StringConstraints, field_validator

from pont_shared.auth import ORG_PATTERN
from pont_shared.contract.rpc import Reply, Request
from pont_shared.contract.rpc.types import ChildRef, Service

Id = Annotated[str, StringConstraints(min_length=1, max_length=64)]


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


class BookAppointment(Request):
    """A child (by the platform pseudonym the gateway derived from the UPN) into a slot."""

    slot_id: Id
    child_ref: ChildRef
    referral_id: Id | None = None


class CancelAppointment(Request):
    reason: str | None = Field(default=None, max_length=2000)


class SlotView(Reply):
    id: str
    start: str
    end: str
    capacity: int
    booked: int


class AppointmentView(Reply):
    id: str
    status: str
    slot_id: str
    session_id: str
    child_ref: str
    start: str
    end: str
    referral_id: str | None = None
    site: str | None = None   # where the child is to be: given when an appointment's outcome is recorded


class SessionView(Reply):
    """A session with its slots; times in the school's zone, with their offset."""

    id: str
    site: str
    room: str
    service: str
    provider_org: str
    date: str
    start: str
    end: str
    slot_minutes: int
    capacity_per_slot: int
    slots: list[SlotView]
    appointments: list[AppointmentView] | None = None   # for its provider only (get_session)
