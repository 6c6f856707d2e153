"""One function per command and per event of an agency's link. Each takes a UnitOfWork."""
from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import insert, select, update

from pont_shared.contract.errors import Conflict, Forbidden, Invalid, NotFound
from pont_shared.contract.events import (
    AgencyDecided,
    ConsentExpired,
    ConsentWithdrawn,
    DisclosureDelivered,
    _AppointmentEvent,
)
from pont_shared.contract.rpc.agency_link import (
    AgencyDecision,
    CopyView,
    DecisionView,
    PupilAppointmentView,
    ReviewView,
)
from pont_shared.contract.rpc.transitions import ImportedRecord, Transfer, TransferCounts
from pont_shared.identity import upn_problem
from pont_shared.messaging.db import insert_rows
from pont_shared.messaging.uow import UnitOfWork

from .domain import BOOKED, CLOSE_CODES, DECLINE_CODES, AgencyCopy, DecisionRefused
from .orm import appointments, dsl_reviews, imported_transfers
from .repository import CopyRepository

log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]
SCHOOL_ZONE = ZoneInfo("Europe/London")


def _own(caller: dict, org: str) -> None:
    # another organisation's copy is not theirs to see: its instance simply holds nothing for them
    if caller.get("org") != org:
        raise NotFound("nothing here for this organisation")


def store_disclosure(uow: UnitOfWork, event: DisclosureDelivered, org: str, at: datetime) -> None:
    """Keep the agency's copy: exactly what was delivered, nothing more."""
    if event.to_org != org:
        log.warning("agency_link.misaddressed_disclosure", disclosure_id=event.disclosure_id)
        return
    with uow:
        repo = CopyRepository(uow.session)
        repo.lock_child(event.child_ref)
        copy = AgencyCopy(
            disclosure_id=event.disclosure_id, subject_kind=event.subject_kind, subject_id=event.subject_id,
            child_ref=event.child_ref, from_org=event.from_org, purpose=event.purpose.value,
            basis=event.basis.value, basis_ref=event.basis_ref, content=dict(event.content), received_at=at)
        # the withdrawal may have been handled first: it comes from consent, the copy from another service
        for consent_id, action in repo.withdrawals_of(event.child_ref).items():
            copy.honour_withdrawal(consent_id, action, at)
        repo.add_once(copy)   # a disclosure delivered again, in another event, is kept once
        uow.commit()


def inbox(uow: UnitOfWork, org: str, caller: dict, kind: str | None = None) -> list[CopyView]:
    _own(caller, org)
    with uow:
        copies = CopyRepository(uow.session).of_kind(kind)
    roles = frozenset(caller.get("roles", ()))
    return [CopyView.model_validate(copy.view(roles)) for copy in copies]


def decide(uow: UnitOfWork, org: str, caller: dict, request: AgencyDecision, *, clock: Clock) -> DecisionView:
    """Record the agency's decision in its own store; tell Pont the decision as codes only."""
    _own(caller, org)
    decision, kind = request.decision, request.subject_kind
    codes = {"declined": DECLINE_CODES, "closed": CLOSE_CODES}.get(decision)
    reason_code = None
    if codes is not None:
        reason_code = request.reason_code or "other"
        if reason_code not in codes:
            raise Invalid("unknown reason code", [{"field": "reason_code", "message": f"one of {', '.join(codes)}"}])
    with uow:
        repo = CopyRepository(uow.session)
        copy = repo.latest_for(kind, request.subject_id)
        if copy is None:
            raise NotFound(f"no such {kind} for this organisation")
        try:
            copy.decide(decision, clock(), caller["sub"], reason_code=reason_code,
                        note=request.reason or request.outcome)
        except DecisionRefused as exc:
            raise Conflict(exc.message) from exc
        repo.save(copy)
        uow.emit(AgencyDecided(subject_kind=kind, subject_id=request.subject_id, child_ref=copy.child_ref, org=org,
                               decision=decision, by=caller["sub"], reason_code=reason_code),
                 subject=copy.child_ref)
        uow.commit()
    return DecisionView(id=request.subject_id, status=copy.status)


def on_consent_withdrawn(uow: UnitOfWork, event: ConsentWithdrawn | ConsentExpired, org: str, at: datetime) -> int:
    """Restrict (or erase) every copy disclosed to this agency under the withdrawn (or expired:
    restrict) consent, and remember the withdrawal for copies under it that arrive later."""
    action = event.action if isinstance(event, ConsentWithdrawn) else "restrict"
    restricted = 0
    with uow:
        if org in event.recipients:
            repo = CopyRepository(uow.session)
            repo.lock_child(event.child_ref)
            repo.record_withdrawal(event.consent_id, event.child_ref, action, at)
            for copy in repo.of_child(event.child_ref):
                if copy.honour_withdrawal(event.consent_id, action, at):
                    repo.save(copy)
                    restricted += 1
        uow.commit()
    return restricted


def on_appointment(uow: UnitOfWork, event: _AppointmentEvent, status: str, org: str, at: datetime) -> None:
    """The host school learns when and where its pupil will be out of a lesson, never why.

    Each event type has its own queue, so a booking's later event (cancelled, was not
    brought) can be handled before the booking itself. `booked` is the first state and the
    others are final: a late `booked` changes nothing, whichever order they arrive in.
    """
    with uow:
        if event.site == org:
            values = dict(child_ref=event.child_ref, room=event.room, provider_org=event.provider_org,
                          starts_at=event.starts_at, ends_at=event.ends_at, status=status)
            found = uow.session.execute(select(appointments.c.status).where(
                appointments.c.appointment_id == event.appointment_id)).first()
            if found:
                if found.status == BOOKED and status != BOOKED:
                    uow.session.execute(update(appointments).where(
                        appointments.c.appointment_id == event.appointment_id).values(**values))
            else:
                uow.session.execute(insert(appointments).values(appointment_id=event.appointment_id, **values))
            if status == "was_not_brought":
                uow.session.execute(insert(dsl_reviews).values(
                    kind="was_not_brought", appointment_id=event.appointment_id, child_ref=event.child_ref,
                    provider_org=event.provider_org, starts_at=event.starts_at, raised_at=at, status="open"))
        uow.commit()


def pupil_appointments(uow: UnitOfWork, org: str, caller: dict, child_ref: str | None = None,
                       day: str | None = None) -> list[PupilAppointmentView]:
    """The appointments on the school's site, soonest first: one pupil's, or one school day's (Europe/London)."""
    _own(caller, org)
    query = select(appointments).order_by(appointments.c.starts_at, appointments.c.room)
    if child_ref:
        query = query.where(appointments.c.child_ref == child_ref)
    if day is not None:
        try:
            starts = datetime.combine(date.fromisoformat(day), time(), SCHOOL_ZONE)
            bounds = starts.astimezone(UTC), (starts + timedelta(days=1)).astimezone(UTC)
        except (TypeError, ValueError, OverflowError):
            raise Invalid("not a date", [{"field": "day", "message": "a date, YYYY-MM-DD"}]) from None
        query = query.where(appointments.c.starts_at >= bounds[0], appointments.c.starts_at < bounds[1])
    with uow:
        return [PupilAppointmentView.model_validate(dict(row)) for row in uow.session.execute(query).mappings().all()]


def dsl_review_items(uow: UnitOfWork, org: str, caller: dict) -> list[ReviewView]:
    _own(caller, org)
    if "dsl" not in (caller.get("roles") or ()):
        raise Forbidden("the review inbox is for the designated safeguarding lead")
    with uow:
        rows = uow.session.execute(select(dsl_reviews).order_by(dsl_reviews.c.raised_at)).mappings().all()
    return [ReviewView.model_validate(dict(row)) for row in rows]


# --- Common Transfer Files imported by a school -------------------------------------------------

IMPORT_ROLES = frozenset({"transition_lead", "dsl"})
CTF_SECTIONS = ("identifiers", "attendance", "aln")


def _check_importer(caller: dict, org: str) -> None:
    _own(caller, org)
    if not org.startswith("school:") or not IMPORT_ROLES.intersection(caller.get("roles") or ()):
        raise Forbidden("only a school's transition lead or DSL imports or reads transfer files")


def _carried(pupil: dict) -> dict:
    """Only the sections a CTF carries, as it carried them."""
    return {name: pupil[name] for name in CTF_SECTIONS if pupil.get(name) is not None}


def import_transfer(uow: UnitOfWork, org: str, caller: dict, transfer: Transfer, *,
                    child_ref_of: Callable[[str], str], clock: Clock) -> TransferCounts:
    """Store each pupil of a parsed CTF ([{identifiers, attendance?, aln?}]) in this school's own store;
    the same file again adds nothing."""
    _check_importer(caller, org)
    source_file, pupils = transfer.source_file, transfer.pupils
    from_school, to_school = transfer.from_school, transfer.to_school
    if to_school != org:
        raise Invalid("the file is addressed to another school",
                      [{"field": "xml", "message": "the CTF's destination school is not the caller's school"}])
    rows: dict[str, dict] = {}
    for index, pupil in enumerate(pupils):
        upn = ((pupil or {}).get("identifiers") or {}).get("upn")
        problem = upn_problem(upn)
        if problem:
            raise Invalid("a pupil's UPN is not valid", [{"field": "xml", "message": f"pupil {index + 1}: {problem}"}])
        rows[child_ref_of(upn)] = _carried(pupil)   # a pupil twice in one file: the later entry stands
    now = clock()
    with uow:
        held = set(uow.session.execute(select(imported_transfers.c.child_ref).where(
            imported_transfers.c.source_file == source_file,
            imported_transfers.c.child_ref.in_(list(rows)))).scalars()) if rows else set()
        new = [{"id": str(uuid.uuid4()), "child_ref": ref, "source_file": source_file, "from_school": from_school,
                "to_school": to_school, "content": content, "imported_at": now, "imported_by": caller["sub"]}
               for ref, content in rows.items() if ref not in held]
        if new:
            insert_rows(uow.session.connection(), imported_transfers, new)
        uow.commit()
    return TransferCounts(source_file=source_file, imported=len(new), already_held=len(held))


def imported(uow: UnitOfWork, org: str, caller: dict, child_ref: str | None = None) -> list[ImportedRecord]:
    """The transfer records this school imported, oldest first."""
    _check_importer(caller, org)
    query = select(imported_transfers).order_by(imported_transfers.c.imported_at, imported_transfers.c.id)
    if child_ref:
        query = query.where(imported_transfers.c.child_ref == child_ref)
    with uow:
        rows = uow.session.execute(query).mappings().all()
    return [ImportedRecord(id=r["id"], child_ref=r["child_ref"], source_file=r["source_file"],
                           from_school=r["from_school"], imported_at=r["imported_at"], imported_by=r["imported_by"],
                           sections=r["content"]) for r in rows]
