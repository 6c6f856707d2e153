"""Reading and writing the booking aggregates on the service's own database.

The one place that knows SQL. Locks are taken where a rule depends on what other
transactions are doing (the room row while checking overlaps, the slot row while counting
places); the database constraints are the last word, and their violations come back as
the domain's own errors.
"""
from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as DbSession

from .domain import Appointment, ChildBusy, RoomTaken, Session, Slot, SlotFull, new_id
from .orm import appointments, rooms, sessions, sites, slots

# constraint name → the domain error its violation means
_CONSTRAINT_ERRORS = {
    "sessions_room_no_overlap": (RoomTaken, "the room is taken at an overlapping time"),
    "slots_within_capacity": (SlotFull, "the slot is full"),
    "appointments_child_no_overlap": (ChildBusy, "the child already has an appointment at an overlapping time"),
}


def _translated(exc: IntegrityError) -> Exception:
    diag = getattr(exc.orig, "diag", None)
    name = getattr(diag, "constraint_name", None) or ""
    text = str(exc.orig)
    for constraint, (error, message) in _CONSTRAINT_ERRORS.items():
        if constraint == name or constraint in text:
            return error(message)
    return exc


class BookingsRepository:
    """Sites, rooms, sessions, slots and appointments in one transaction's session."""

    def __init__(self, db: DbSession):
        self.db = db

    def _execute(self, statement, params=None):
        try:
            return self.db.execute(statement, params) if params is not None else self.db.execute(statement)
        except IntegrityError as exc:
            raise _translated(exc) from exc

    def _insert_ignoring_duplicates(self, table, values: dict) -> None:
        dialect = self.db.get_bind().dialect.name
        module = postgresql if dialect == "postgresql" else sqlite
        self._execute(module.insert(table).values(**values).on_conflict_do_nothing())

    # --- rooms ------------------------------------------------------------------------

    def lock_room(self, site: str, room: str, now: datetime) -> str:
        """The room's id, created on first use, locked until this transaction ends.

        Holding the room row makes concurrent scheduling in one room take turns, so the
        domain's overlap check sees every committed session.
        """
        self._insert_ignoring_duplicates(sites, {"org": site, "created_at": now})
        self._insert_ignoring_duplicates(rooms, {"id": new_id(), "site": site, "name": room})
        return self.db.execute(
            select(rooms.c.id).where(rooms.c.site == site, rooms.c.name == room).with_for_update()
        ).scalar_one()

    def sessions_in_room(self, room_id: str, starts_at: datetime, ends_at: datetime) -> list[Session]:
        rows = self.db.execute(
            select(sessions, rooms.c.name.label("room_name")).join(rooms, rooms.c.id == sessions.c.room_id)
            .where(sessions.c.room_id == room_id, sessions.c.starts_at < _utc(ends_at),
                   sessions.c.ends_at > _utc(starts_at))
        ).all()
        return [_session(row) for row in rows]

    # --- sessions ---------------------------------------------------------------------

    def add_session(self, session: Session, room_id: str, *, created_by: str, now: datetime) -> None:
        self._execute(insert(sessions).values(
            id=session.id, provider_org=session.provider_org, site=session.site, room_id=room_id,
            service=session.service, on_date=session.starts_at.date(), starts_at=_utc(session.starts_at),
            ends_at=_utc(session.ends_at), slot_minutes=session.slot_minutes,
            capacity_per_slot=session.capacity_per_slot, created_by=created_by, created_at=now,
        ))
        self._execute(insert(slots), [
            {"id": s.id, "session_id": s.session_id, "starts_at": _utc(s.starts_at), "ends_at": _utc(s.ends_at),
             "capacity": s.capacity, "booked": s.booked}
            for s in session.slots
        ])

    def get_session(self, session_id: str, *, with_slots: bool = True) -> Session | None:
        row = self.db.execute(
            select(sessions, rooms.c.name.label("room_name")).join(rooms, rooms.c.id == sessions.c.room_id)
            .where(sessions.c.id == session_id)
        ).first()
        if row is None:
            return None
        session = _session(row)
        if with_slots:
            session.slots = [_slot(r) for r in self.db.execute(
                select(slots).where(slots.c.session_id == session_id).order_by(slots.c.starts_at))]
        return session

    def sessions_of(self, org: str) -> list[Session]:
        """Every session `org` provides or hosts, soonest first, with their slots."""
        rows = self.db.execute(
            select(sessions, rooms.c.name.label("room_name")).join(rooms, rooms.c.id == sessions.c.room_id)
            .where((sessions.c.provider_org == org) | (sessions.c.site == org)).order_by(sessions.c.starts_at)
        ).all()
        found = [_session(row) for row in rows]
        by_id = {session.id: session for session in found}
        if by_id:
            for row in self.db.execute(select(slots).where(slots.c.session_id.in_(list(by_id)))
                                       .order_by(slots.c.starts_at)):
                by_id[row.session_id].slots.append(_slot(row))
        return found

    def session_appointments(self, session_id: str) -> list[Appointment]:
        return [_appointment(r) for r in self.db.execute(
            select(appointments).where(appointments.c.session_id == session_id).order_by(appointments.c.starts_at))]

    # --- slots and appointments -------------------------------------------------------

    def lock_slot(self, slot_id: str) -> Slot | None:
        """The slot, its row locked so concurrent bookings count its places one at a time."""
        row = self.db.execute(select(slots).where(slots.c.id == slot_id).with_for_update()).first()
        return _slot(row) if row is not None else None

    def save_slot(self, slot: Slot) -> None:
        self._execute(update(slots).where(slots.c.id == slot.id).values(booked=slot.booked))

    def child_appointments(self, child_ref: str, starts_at: datetime, ends_at: datetime) -> list[Appointment]:
        rows = self.db.execute(select(appointments).where(
            appointments.c.child_ref == child_ref, appointments.c.status != "cancelled",
            appointments.c.starts_at < _utc(ends_at), appointments.c.ends_at > _utc(starts_at)))
        return [_appointment(r) for r in rows]

    def add_appointment(self, appointment: Appointment, *, booked_by: str, now: datetime) -> None:
        self._execute(insert(appointments).values(
            id=appointment.id, slot_id=appointment.slot_id, session_id=appointment.session_id,
            child_ref=appointment.child_ref, starts_at=_utc(appointment.starts_at), ends_at=_utc(appointment.ends_at),
            status=appointment.status, referral_id=appointment.referral_id, booked_by=booked_by,
            booked_at=now, updated_at=now,
        ))

    def get_appointment(self, appointment_id: str, *, lock: bool = False) -> Appointment | None:
        query = select(appointments).where(appointments.c.id == appointment_id)
        row = self.db.execute(query.with_for_update() if lock else query).first()
        return _appointment(row) if row is not None else None

    def save_appointment(self, appointment: Appointment, *, now: datetime, cancel_reason: str | None = None) -> None:
        values = {"status": appointment.status, "updated_at": now}
        if cancel_reason is not None:
            values["cancel_reason"] = cancel_reason
        self._execute(update(appointments).where(appointments.c.id == appointment.id).values(**values))

    def utilisation(self, site: str, service: str, now: datetime) -> float:
        """Places booked over places offered, across this site's sessions of this service not yet ended."""
        booked, capacity = self.db.execute(
            select(func.coalesce(func.sum(slots.c.booked), 0), func.coalesce(func.sum(slots.c.capacity), 0))
            .select_from(slots.join(sessions, sessions.c.id == slots.c.session_id))
            .where(and_(sessions.c.site == site, sessions.c.service == service, sessions.c.ends_at > _utc(now)))
        ).one()
        return float(booked) / float(capacity) if capacity else 0.0


def _session(row) -> Session:
    return Session(
        id=row.id, provider_org=row.provider_org, site=row.site, room=row.room_name, service=row.service,
        starts_at=_aware(row.starts_at), ends_at=_aware(row.ends_at), slot_minutes=row.slot_minutes,
        capacity_per_slot=row.capacity_per_slot,
    )


def _slot(row) -> Slot:
    return Slot(id=row.id, session_id=row.session_id, starts_at=_aware(row.starts_at), ends_at=_aware(row.ends_at),
                capacity=row.capacity, booked=row.booked)


def _appointment(row) -> Appointment:
    return Appointment(id=row.id, slot_id=row.slot_id, session_id=row.session_id, child_ref=row.child_ref,
                       starts_at=_aware(row.starts_at), ends_at=_aware(row.ends_at), status=row.status,
                       referral_id=row.referral_id)


def _utc(moment: datetime) -> datetime:
    """Stored in UTC: SQLite keeps no offset, so every write is normalised."""
    return moment.astimezone(UTC)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
