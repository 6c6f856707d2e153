"""Commands the bookings service accepts: imperative names, plain data."""
from __future__ import annotations

from dataclasses import dataclass

from pont_shared.contract.rpc.bookings import BookAppointment as Booking
from pont_shared.contract.rpc.bookings import SessionIn


@dataclass(frozen=True)
class Actor:
    """Who asks: the user and their organisation."""

    sub: str
    org: str
    roles: frozenset[str]


@dataclass(frozen=True)
class ScheduleSession:
    """The session as the provider asked for it (the RPC contract's `SessionIn`), by whom."""

    by: Actor
    session: SessionIn
    idempotency_key: str | None = None


@dataclass(frozen=True)
class BookAppointment:
    """The booking as the provider asked for it (the RPC contract's `BookAppointment`), by whom."""

    by: Actor
    booking: Booking
    idempotency_key: str | None = None


@dataclass(frozen=True)
class CancelAppointment:
    by: Actor
    appointment_id: str
    reason: str | None = None


@dataclass(frozen=True)
class RecordAttended:
    by: Actor
    appointment_id: str


@dataclass(frozen=True)
class RecordWasNotBrought:
    by: Actor
    appointment_id: str
