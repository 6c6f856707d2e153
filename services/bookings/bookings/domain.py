"""Sessions, slots and appointments: the booking rules in plain Python.

A provider (school nurse, social worker, youth worker) schedules a session in a room on a
school site; the session is cut into slots of equal length, each with a capacity (1 for
appointments, more for group drop-ins). The rules — a room never holds two overlapping
sessions, a slot never goes over capacity, a child is never in two overlapping
appointments — are checked here and again by the database, so they hold under
concurrent requests too. Whether a child attended or was not brought is recorded only once
the appointment has started. Sessions and bookings in the past are allowed: a provider may
record a drop-in after it was held.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo

MAX_SLOT_MINUTES = 8 * 60
MAX_CAPACITY = 500
MAX_SLOTS = 200


class BookingError(Exception):
    """Base of every rule the booking domain refuses."""


class InvalidRequest(BookingError):
    """Input no session can be built from; names the offending field."""

    def __init__(self, field_name: str, message: str):
        super().__init__(message)
        self.field = field_name
        self.message = message


class RoomTaken(BookingError):
    """The room already holds a session at an overlapping time."""


class SlotFull(BookingError):
    """Every place in the slot is taken."""


class ChildBusy(BookingError):
    """The child already has an appointment at an overlapping time."""


class UnknownSlot(BookingError):
    """No such slot (or one of another provider)."""


class UnknownSession(BookingError):
    """No such session (or one the caller may not see)."""


class UnknownAppointment(BookingError):
    """No such appointment (or one of another provider)."""


class NotBooked(BookingError):
    """The appointment has already been cancelled or recorded."""


class NotStarted(BookingError):
    """Whether a child came cannot be known before the appointment starts."""


def new_id() -> str:
    return str(uuid.uuid4())


def overlaps(a_start: datetime, a_end: datetime, b_start: datetime, b_end: datetime) -> bool:
    """Half-open intervals [start, end): back-to-back does not overlap."""
    return a_start < b_end and b_start < a_end


@dataclass
class Slot:
    """One bookable period of a session."""

    id: str
    session_id: str
    starts_at: datetime
    ends_at: datetime
    capacity: int
    booked: int = 0

    def reserve(self) -> None:
        if self.booked >= self.capacity:
            raise SlotFull(f"the slot is full ({self.capacity} of {self.capacity} places taken)")
        self.booked += 1

    def release(self) -> None:
        self.booked = max(0, self.booked - 1)


@dataclass
class Session:
    """A provider's clinic or drop-in in a room on a school site."""

    id: str
    provider_org: str
    site: str
    room: str
    service: str
    starts_at: datetime
    ends_at: datetime
    slot_minutes: int
    capacity_per_slot: int
    slots: list[Slot] = field(default_factory=list)

    @classmethod
    def schedule(cls, *, provider_org: str, site: str, room: str, service: str, on: date, start: time,
                 end: time, slot_minutes: int, capacity_per_slot: int, zone: tzinfo) -> Session:
        """A new session cut into slots; times without an offset are local to `zone`.

        Outside school hours is allowed: families may only be able to come in the evening.
        """
        if not room or not room.strip():
            raise InvalidRequest("room", "a room is needed")
        if not isinstance(slot_minutes, int) or not 1 <= slot_minutes <= MAX_SLOT_MINUTES:
            raise InvalidRequest("slot_minutes", f"slot length must be 1 to {MAX_SLOT_MINUTES} minutes")
        if not isinstance(capacity_per_slot, int) or not 1 <= capacity_per_slot <= MAX_CAPACITY:
            raise InvalidRequest("capacity_per_slot", f"capacity per slot must be 1 to {MAX_CAPACITY}")
        starts_at = _at(on, start, zone)
        ends_at = _at(on, end, zone)
        if ends_at <= starts_at:
            raise InvalidRequest("end", "the session must end after it starts")
        minutes, remainder = divmod((ends_at - starts_at).total_seconds(), 60)
        if remainder or minutes % slot_minutes:
            raise InvalidRequest("slot_minutes",
                                 f"slot length {slot_minutes} min does not divide the {minutes:g} min session")
        count = int(minutes // slot_minutes)
        if count > MAX_SLOTS:
            raise InvalidRequest("slot_minutes", f"a session has at most {MAX_SLOTS} slots")
        session = cls(id=new_id(), provider_org=provider_org, site=site, room=room.strip(), service=service,
                      starts_at=starts_at, ends_at=ends_at, slot_minutes=slot_minutes,
                      capacity_per_slot=capacity_per_slot)
        step = timedelta(minutes=slot_minutes)
        session.slots = [
            Slot(id=new_id(), session_id=session.id, starts_at=starts_at + i * step,
                 ends_at=starts_at + (i + 1) * step, capacity=capacity_per_slot)
            for i in range(count)
        ]
        return session

    def check_room_free(self, others: list[Session]) -> None:
        """Refuse when another session holds the same room at an overlapping time."""
        for other in others:
            if (other.id != self.id and other.site == self.site and other.room == self.room
                    and overlaps(self.starts_at, self.ends_at, other.starts_at, other.ends_at)):
                raise RoomTaken(f"room {self.room!r} is taken from {other.starts_at.isoformat()} "
                                f"to {other.ends_at.isoformat()}")

    def visible_to(self, org: str) -> bool:
        """The provider and the host school may see a session; nobody else."""
        return org in (self.provider_org, self.site)


ACTIVE = "booked"
STATUSES = ("booked", "cancelled", "attended", "was_not_brought")


@dataclass
class Appointment:
    """A child's place in a slot: booked, then cancelled, attended or was not brought."""

    id: str
    slot_id: str
    session_id: str
    child_ref: str
    starts_at: datetime
    ends_at: datetime
    status: str = ACTIVE
    referral_id: str | None = None

    @classmethod
    def book(cls, slot: Slot, child_ref: str, child_appointments: list[Appointment],
             referral_id: str | None = None) -> Appointment:
        """Take a place in `slot` for a child who is free at that time."""
        for other in child_appointments:
            if other.holds_time() and other.child_ref == child_ref and overlaps(
                    slot.starts_at, slot.ends_at, other.starts_at, other.ends_at):
                raise ChildBusy("the child already has an appointment at an overlapping time")
        slot.reserve()
        return cls(id=new_id(), slot_id=slot.id, session_id=slot.session_id, child_ref=child_ref,
                   starts_at=slot.starts_at, ends_at=slot.ends_at, referral_id=referral_id)

    def holds_time(self) -> bool:
        """Everything but a cancellation keeps the child's time (and the place) taken."""
        return self.status != "cancelled"

    def cancel(self, slot: Slot) -> None:
        self._leave_booked("cancelled")
        slot.release()

    def mark_attended(self, now: datetime) -> None:
        self._record_outcome("attended", now)

    def mark_was_not_brought(self, now: datetime) -> None:
        """A safeguarding signal for the host school's DSL, so never ahead of the appointment."""
        self._record_outcome("was_not_brought", now)

    def _record_outcome(self, status: str, now: datetime) -> None:
        if self.status == ACTIVE and now < self.starts_at:
            raise NotStarted(f"the appointment starts at {self.starts_at.isoformat()}; "
                             "whether the child came is recorded once it has started")
        self._leave_booked(status)

    def _leave_booked(self, status: str) -> None:
        if self.status != ACTIVE:
            raise NotBooked(f"the appointment is {self.status}, not booked")
        self.status = status


def _at(on: date, at: time, zone: tzinfo) -> datetime:
    moment = datetime.combine(on, at)
    return moment if at.tzinfo is not None else moment.replace(tzinfo=zone)
