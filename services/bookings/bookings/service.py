"""The bookings nameko service: RPC entrypoints only; the rules are in domain.py."""
from __future__ import annotations

from functools import wraps
from pathlib import Path

from pont_shared.contract.errors import Conflict, Invalid, NotFound
from pont_shared.contract.rpc.bookings import BookAppointment as Booking
from pont_shared.contract.rpc.bookings import CancelAppointment as Cancellation
from pont_shared.contract.rpc.bookings import SessionIn
from pont_shared.messaging.dependencies import Clock, UnitOfWorkProvider
from pont_shared.messaging.rpc import rpc
from pont_shared.operations.migrations import migrator
from pont_shared.operations.ops import OpsEndpoints

from . import domain, handlers, metrics
from .commands import (
    Actor,
    BookAppointment,
    CancelAppointment,
    RecordAttended,
    RecordWasNotBrought,
    ScheduleSession,
)
from .config import SCHOOL_ZONE
from .orm import metadata, tables

MIGRATIONS = Path(__file__).parent / "migrations"

# refusals of client input: logged by nameko as expected, without alarm
EXPECTED = (Conflict, Invalid, NotFound)

# one domain error → one error the gateway maps to a status
_ERRORS = [
    ((domain.UnknownSlot, domain.UnknownSession, domain.UnknownAppointment), NotFound),
    ((domain.RoomTaken, domain.SlotFull, domain.ChildBusy, domain.NotBooked, domain.NotStarted), Conflict),
]


def _translating(method):
    @wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except domain.InvalidRequest as exc:
            raise Invalid(exc.message, [{"field": exc.field, "message": exc.message}]) from None
        except domain.BookingError as exc:
            for domain_errors, error in _ERRORS:
                if isinstance(exc, domain_errors):
                    raise error(str(exc)) from None
            raise
    return wrapper


def _actor(caller: dict) -> Actor:
    return Actor(sub=str(caller["sub"]), org=str(caller["org"]), roles=frozenset(caller.get("roles", ())))


class BookingsService(OpsEndpoints):
    """Sites, rooms, co-located sessions, slots and appointments."""

    name = "bookings"
    uow = UnitOfWorkProvider(metadata, tables, prepare=migrator(MIGRATIONS))
    clock = Clock()

    @rpc(expected_exceptions=EXPECTED)
    @_translating
    def schedule_session(self, caller, body, idempotency_key=None):
        cmd = ScheduleSession(by=_actor(caller), session=SessionIn.parse(body), idempotency_key=idempotency_key)
        return handlers.schedule_session(self.uow, cmd, clock=self.clock, zone=SCHOOL_ZONE)

    @rpc(expected_exceptions=EXPECTED)
    @_translating
    def get_session(self, caller, session_id):
        return handlers.get_session(self.uow, session_id, _actor(caller), zone=SCHOOL_ZONE)

    @rpc(expected_exceptions=EXPECTED)
    @_translating
    def list_sessions(self, caller):
        return handlers.list_sessions(self.uow, _actor(caller), zone=SCHOOL_ZONE)

    @rpc(expected_exceptions=EXPECTED)
    @_translating
    def book_appointment(self, caller, request, idempotency_key=None):
        cmd = BookAppointment(by=_actor(caller), booking=Booking.parse(request), idempotency_key=idempotency_key)
        try:
            return handlers.book_appointment(self.uow, cmd, clock=self.clock)
        except domain.BookingError as exc:
            metrics.BOOKINGS.labels(_REFUSALS.get(type(exc), "refused")).inc()
            raise

    @rpc(expected_exceptions=EXPECTED)
    @_translating
    def cancel_appointment(self, caller, appointment_id, request=None):
        cancellation = Cancellation.parse(request)
        cmd = CancelAppointment(by=_actor(caller), appointment_id=appointment_id, reason=cancellation.reason)
        return handlers.cancel_appointment(self.uow, cmd, clock=self.clock)

    @rpc(expected_exceptions=EXPECTED)
    @_translating
    def record_attended(self, caller, appointment_id):
        return handlers.record_attended(self.uow, RecordAttended(_actor(caller), appointment_id), clock=self.clock)

    @rpc(expected_exceptions=EXPECTED)
    @_translating
    def record_was_not_brought(self, caller, appointment_id):
        cmd = RecordWasNotBrought(_actor(caller), appointment_id)
        return handlers.record_was_not_brought(self.uow, cmd, clock=self.clock)


_REFUSALS = {domain.SlotFull: "slot_full", domain.ChildBusy: "child_busy", domain.UnknownSlot: "unknown_slot"}
