"""One function per command: each takes a UnitOfWork, the command and a clock.

State, events (to the outbox) and the idempotency record commit in one transaction.
Events carry the child_ref, codes, time and room — never why the child is seen.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, tzinfo

from pont_shared.contract.events import (
    AppointmentAttended,
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentWasNotBrought,
    SessionScheduled,
)
from pont_shared.messaging.uow import UnitOfWork

from . import metrics
from .commands import (
    Actor,
    BookAppointment,
    CancelAppointment,
    RecordAttended,
    RecordWasNotBrought,
    ScheduleSession,
)
from .domain import Appointment, Session, UnknownAppointment, UnknownSession, UnknownSlot
from .repository import BookingsRepository

Clock = Callable[[], datetime]


def schedule_session(uow: UnitOfWork, cmd: ScheduleSession, *, clock: Clock, zone: tzinfo) -> dict:
    """Schedule a provider's session in a room on a school site, cut into slots."""
    asked = cmd.session
    request = asked.wire()
    scope = f"POST /sessions:{cmd.by.org}"
    with uow:
        replayed = uow.replay(scope, cmd.idempotency_key, request)
        if replayed is not None:
            return replayed
        session = Session.schedule(
            provider_org=cmd.by.org, site=asked.site, room=asked.room, service=asked.service, on=asked.date,
            start=asked.start, end=asked.end, slot_minutes=asked.slot_minutes,
            capacity_per_slot=asked.capacity_per_slot, zone=zone)
        repo = BookingsRepository(uow.session)
        now = clock()
        room_id = repo.lock_room(session.site, session.room, now)
        session.check_room_free(repo.sessions_in_room(room_id, session.starts_at, session.ends_at))
        repo.add_session(session, room_id, created_by=cmd.by.sub, now=now)
        uow.emit(SessionScheduled(
            session_id=session.id, site=session.site, room=session.room, provider_org=session.provider_org,
            service=session.service, starts_at=session.starts_at, ends_at=session.ends_at))
        view = session_view(session, zone)
        uow.remember(scope, cmd.idempotency_key, request, view)
        uow.commit()
        _update_utilisation(repo, session, now)
    return view


def get_session(uow: UnitOfWork, session_id: str, by: Actor, *, zone: tzinfo) -> dict:
    """A session with its slots, for its provider or its host school."""
    with uow:
        repo = BookingsRepository(uow.session)
        session = repo.get_session(session_id)
        if session is None or not session.visible_to(by.org):
            raise UnknownSession(f"no session {session_id}")
        view = session_view(session, zone)
        if by.org == session.provider_org:
            view["appointments"] = [appointment_view(a) for a in repo.session_appointments(session_id)]
    return view


def list_sessions(uow: UnitOfWork, by: Actor, *, zone: tzinfo) -> list[dict]:
    """The sessions the caller's organisation provides or hosts, soonest first, with their slots."""
    with uow:
        return [session_view(session, zone) for session in BookingsRepository(uow.session).sessions_of(by.org)]


def book_appointment(uow: UnitOfWork, cmd: BookAppointment, *, clock: Clock) -> dict:
    """Book a child into a slot of one of the caller's own sessions."""
    booking = cmd.booking
    request = booking.wire()   # what the Idempotency-Key must be sent with again
    scope = f"POST /appointments:{cmd.by.org}"
    with uow:
        replayed = uow.replay(scope, cmd.idempotency_key, request)
        if replayed is not None:
            metrics.BOOKINGS.labels("replayed").inc()
            return replayed
        repo = BookingsRepository(uow.session)
        slot = repo.lock_slot(booking.slot_id)
        session = repo.get_session(slot.session_id, with_slots=False) if slot is not None else None
        if session is None or session.provider_org != cmd.by.org:
            raise UnknownSlot(f"no slot {booking.slot_id}")
        appointment = Appointment.book(
            slot, booking.child_ref, repo.child_appointments(booking.child_ref, slot.starts_at, slot.ends_at),
            referral_id=booking.referral_id)
        now = clock()
        repo.save_slot(slot)
        repo.add_appointment(appointment, booked_by=cmd.by.sub, now=now)
        uow.emit(_appointment_event(AppointmentBooked, appointment, session), subject=appointment.child_ref)
        view = appointment_view(appointment)
        uow.remember(scope, cmd.idempotency_key, request, view)
        uow.commit()
        metrics.BOOKINGS.labels("booked").inc()
        _update_utilisation(repo, session, now)
    return view


def cancel_appointment(uow: UnitOfWork, cmd: CancelAppointment, *, clock: Clock) -> dict:
    """Cancel a booked appointment: its place is free for the next booking."""
    with uow:
        repo = BookingsRepository(uow.session)
        found = repo.get_appointment(cmd.appointment_id)
        session = _own_session(repo, found, cmd.by, cmd.appointment_id)
        # slot before appointment, the order booking takes them in: no deadlock between the two
        slot = repo.lock_slot(found.slot_id)
        appointment = repo.get_appointment(cmd.appointment_id, lock=True)
        appointment.cancel(slot)
        now = clock()
        repo.save_slot(slot)
        repo.save_appointment(appointment, now=now, cancel_reason=cmd.reason)
        uow.emit(_appointment_event(AppointmentCancelled, appointment, session), subject=appointment.child_ref)
        uow.commit()
        _update_utilisation(repo, session, now)
    return appointment_view(appointment)


def record_attended(uow: UnitOfWork, cmd: RecordAttended, *, clock: Clock) -> dict:
    """Record that the child came to the appointment."""
    return _record(uow, cmd.by, cmd.appointment_id, Appointment.mark_attended, AppointmentAttended, clock)


def record_was_not_brought(uow: UnitOfWork, cmd: RecordWasNotBrought, *, clock: Clock) -> dict:
    """Record that the child was not brought: the event raises it to the host school's DSL."""
    view = _record(uow, cmd.by, cmd.appointment_id, Appointment.mark_was_not_brought,
                   AppointmentWasNotBrought, clock)
    metrics.WAS_NOT_BROUGHT.labels(view["site"]).inc()
    return view


def _record(uow: UnitOfWork, by: Actor, appointment_id: str, transition, event_type, clock: Clock) -> dict:
    with uow:
        repo = BookingsRepository(uow.session)
        appointment = repo.get_appointment(appointment_id, lock=True)
        session = _own_session(repo, appointment, by, appointment_id)
        now = clock()
        transition(appointment, now)
        repo.save_appointment(appointment, now=now)
        uow.emit(_appointment_event(event_type, appointment, session), subject=appointment.child_ref)
        uow.commit()
    return {**appointment_view(appointment), "site": session.site}


def _own_session(repo: BookingsRepository, appointment: Appointment | None, by: Actor, appointment_id: str) -> Session:
    session = repo.get_session(appointment.session_id, with_slots=False) if appointment is not None else None
    if session is None or session.provider_org != by.org:
        raise UnknownAppointment(f"no appointment {appointment_id}")
    return session


def _appointment_event(event_type, appointment: Appointment, session: Session):
    return event_type(
        appointment_id=appointment.id, session_id=session.id, child_ref=appointment.child_ref, site=session.site,
        room=session.room, provider_org=session.provider_org, starts_at=appointment.starts_at,
        ends_at=appointment.ends_at)


def _update_utilisation(repo: BookingsRepository, session: Session, now: datetime) -> None:
    metrics.UTILISATION.labels(session.site, session.service).set(repo.utilisation(session.site, session.service, now))


def session_view(session: Session, zone: tzinfo) -> dict:
    local = session.starts_at.astimezone(zone)
    return {
        "id": session.id, "site": session.site, "room": session.room, "service": session.service,
        "provider_org": session.provider_org, "date": local.date().isoformat(),
        "start": local.isoformat(), "end": session.ends_at.astimezone(zone).isoformat(),
        "slot_minutes": session.slot_minutes, "capacity_per_slot": session.capacity_per_slot,
        "slots": [
            {"id": s.id, "start": s.starts_at.astimezone(zone).isoformat(),
             "end": s.ends_at.astimezone(zone).isoformat(), "capacity": s.capacity, "booked": s.booked}
            for s in session.slots
        ],
    }


def appointment_view(appointment: Appointment) -> dict:
    return {
        "id": appointment.id, "status": appointment.status, "slot_id": appointment.slot_id,
        "session_id": appointment.session_id, "child_ref": appointment.child_ref,
        "start": appointment.starts_at.isoformat(), "end": appointment.ends_at.isoformat(),
        "referral_id": appointment.referral_id,
    }
