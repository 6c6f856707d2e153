"""One function per command. Each takes a UnitOfWork (and the consent client where it asks).

Cohorts are handled as sets: one batch of sharing questions, one bulk insert or update,
the events written to the outbox in the same transaction.
"""
from __future__ import annotations

import dataclasses
import json
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import bindparam, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from pont_shared.contract.caller import CallerClaims
from pont_shared.contract.errors import Conflict, Forbidden, Invalid, NotFound
from pont_shared.contract.events import (
    ConsentExpired,
    ConsentWithdrawn,
    DisclosureDelivered,
    TransitionAcknowledged,
    TransitionOverdue,
    TransitionPrepared,
    TransitionSent,
)
from pont_shared.contract.rpc.consent import DecideReply, DecideRequest, ShareRequest
from pont_shared.contract.rpc.transitions import NewTransitions
from pont_shared.messaging.db import insert_rows

from . import ctf, domain, metrics
from .domain import CHILD_PROTECTION, Transition, Withheld
from .orm import ctf_sequences, ended_consents, transitions

log = structlog.get_logger(__name__)

SENDER_ROLE = "transition_lead"
RECEIVER_ROLES = frozenset({"transition_lead", "dsl"})


@dataclass(frozen=True)
class PupilRecord:
    child_ref: str
    sections: dict   # identifiers always; the rest as supplied


@dataclass(frozen=True)
class PrepareCohort:
    """Prepare (and optionally send) one record per pupil for the receiving school."""

    to_school: str
    pupils: list[PupilRecord]
    send: bool
    caller: dict


# --- rows ---------------------------------------------------------------------------

def _row(t: Transition) -> dict:
    return {
        "id": t.id, "child_ref": t.child_ref, "from_school": t.from_school, "to_school": t.to_school,
        "prepared_by": t.prepared_by, "prepared_at": t.prepared_at, "status": t.status,
        "sections": t.sections, "included": list(t.included), "withheld": [w.as_dict() for w in t.withheld],
        "disclosure_ids": list(t.disclosure_ids), "section_basis": dict(t.section_basis),
        "sent_at": t.sent_at, "due_at": t.due_at,
        "acknowledged_at": t.acknowledged_at, "acknowledged_by": t.acknowledged_by, "overdue_at": t.overdue_at,
        "send_requested_at": t.send_requested_at, "send_requested_by": t.send_requested_by,
    }


def _transition(row) -> Transition:
    m = row._mapping
    return Transition(
        id=m["id"], child_ref=m["child_ref"], from_school=m["from_school"], to_school=m["to_school"],
        prepared_by=m["prepared_by"], prepared_at=m["prepared_at"], sections=m["sections"], status=m["status"],
        included=tuple(m["included"]), withheld=tuple(Withheld(**w) for w in m["withheld"]),
        disclosure_ids=tuple(m["disclosure_ids"]), section_basis=m["section_basis"] or {},
        sent_at=m["sent_at"], due_at=m["due_at"],
        acknowledged_at=m["acknowledged_at"], acknowledged_by=m["acknowledged_by"], overdue_at=m["overdue_at"],
        send_requested_at=m["send_requested_at"], send_requested_by=m["send_requested_by"],
    )


def _load(uow, ids: list[str], *, for_update: bool = False) -> dict[str, Transition]:
    query = select(transitions).where(transitions.c.id.in_(ids))
    rows = uow.session.execute(query.with_for_update() if for_update else query).all()
    return {row.id: _transition(row) for row in rows}


def _load_one(uow, transition_id: str, *, for_update: bool = False) -> Transition:
    found = _load(uow, [transition_id], for_update=for_update).get(transition_id)
    if found is None:
        raise NotFound(f"no transition {transition_id}")
    return found


_UPDATABLE = ("status", "included", "withheld", "disclosure_ids", "section_basis", "sent_at", "due_at",
              "acknowledged_at", "acknowledged_by", "overdue_at", "send_requested_at", "send_requested_by")


def _save(uow, records: list[Transition], columns: tuple[str, ...] = _UPDATABLE) -> None:
    """Update `columns` (those the command changed) of `records`: one statement when every
    record changed alike (an acknowledgement, an overdue sweep), else one executemany."""
    if not records:
        return
    changes = [{name: row[name] for name in columns} for row in map(_row, records)]
    if all(change == changes[0] for change in changes):
        uow.session.connection().execute(
            update(transitions).where(transitions.c.id.in_([r.id for r in records])).values(changes[0]))
        return
    statement = update(transitions).where(transitions.c.id == bindparam("_id")).values(
        {name: bindparam(name) for name in columns})
    uow.session.connection().execute(
        statement, [{"_id": record.id, **change} for record, change in zip(records, changes, strict=True)])


def _event(payload_cls, t: Transition):
    return payload_cls(transition_id=t.id, child_ref=t.child_ref, from_school=t.from_school, to_school=t.to_school)


# --- asking consent -------------------------------------------------------------------

def _requests(records: list[Transition], caller: dict, *, share: bool):
    """The sharing questions for each record: (record index, 'main' | 'cp', request)."""
    roles = frozenset(caller.get("roles", ()))
    claims = CallerClaims.model_validate(_sender(caller))
    questions, asked = [], []
    for index, record in enumerate(records):
        question = domain.question_for(record.sections, roles)
        questions.append(question)
        asks = []
        if question.categories:
            asks.append(("main", {"categories": list(question.categories)}))
        if question.ask_child_protection:
            asks.append(("cp", {"categories": [domain.SECTION_CATEGORY[CHILD_PROTECTION]], "basis": domain.CP_BASIS,
                                "justification": domain.CP_JUSTIFICATION}))
        for kind, fields in asks:
            base = dict(child_ref=record.child_ref, from_org=record.from_school, to_org=record.to_school,
                        purpose=domain.PURPOSE, caller=claims, **fields)
            if share:
                # each disclosure is keyed by the record and its kind: asked again (a retry after this
                # service's transaction failed), consent answers with the same disclosure, no second entry
                request = ShareRequest(**base, subject_kind="transition", subject_id=record.id,
                                       idempotency_key=f"transition:{record.id}:{kind}")
            else:
                request = DecideRequest(**base)
            asked.append((index, kind, request))
    return questions, asked


def _ask(sharing, records: list[Transition], caller: dict, *, share: bool):
    """Per record: (its section outcome, {'main'|'cp': the consent service's reply})."""
    questions, asked = _requests(records, caller, share=share)
    ask = sharing.share_many if share else sharing.decide_many
    results = ask([request for _, _, request in asked]) if asked else []
    if len(results) != len(asked):
        raise RuntimeError("the consent service answered a different number of questions than asked")
    by_record: list[dict] = [{} for _ in records]
    for (index, kind, _), result in zip(asked, results, strict=True):
        by_record[index][kind] = result
    outcomes = []
    for record, question, answers in zip(records, questions, by_record, strict=True):
        main, cp = answers.get("main"), answers.get("cp")
        outcome = domain.outcome_of(record.sections, question, main and _decisions(main), cp and _decisions(cp))
        outcomes.append((outcome, answers))
    return outcomes


def _decisions(reply: DecideReply) -> list[dict]:
    """The reply's decisions as the domain takes them: plain dicts."""
    return [decision.wire() for decision in reply.decisions]


def _deliver(uow, record: Transition, outcome: domain.SectionOutcome, answers: dict) -> tuple[str, ...]:
    """Emit the disclosures (consent sections; child protection apart, DSL only); their ledger ids."""
    main_content, cp_content = domain.delivery_content(record, outcome)
    sent = []
    for kind, content, decisions in (("main", main_content, outcome.main_decisions),
                                     ("cp", cp_content, (outcome.cp_decision,) if outcome.cp_decision else ())):
        if content is None:
            continue
        disclosure_id = answers[kind].disclosure_id or str(uuid.uuid4())
        # every consent the copy rests on, per section (a list, never a joined string); the
        # envelope's basis_ref names the basis of its first category, as the ledger entry does
        basis_refs = {section: refs for section, refs in outcome.basis().items() if section in content["sections"]}
        if any(basis_refs.values()):
            content = {**content, "basis_refs": basis_refs}
        uow.emit(DisclosureDelivered(
            disclosure_id=disclosure_id, child_ref=record.child_ref, to_org=record.to_school,
            from_org=record.from_school, purpose=domain.PURPOSE, subject_kind="transition", subject_id=record.id,
            basis=decisions[0]["basis"], basis_ref=decisions[0].get("basis_ref") or "-", content=content,
        ), subject=record.child_ref)
        sent.append(disclosure_id)
    return tuple(sent)


def _send(uow, records: list[Transition], outcomes, now: datetime, period: timedelta) -> list[Transition]:
    done = []
    for record, (outcome, answers) in zip(records, outcomes, strict=True):
        disclosure_ids = _deliver(uow, record, outcome, answers)
        sent = _honour_ended(uow, record.send(outcome, now, period, disclosure_ids))
        uow.emit(_event(TransitionSent, sent), subject=sent.child_ref)
        done.append(sent)
    return done


def _lock_child(uow, child_ref: str) -> None:
    """Until commit, one transaction at a time sends a child's records or ends a consent of the
    child: a send and a withdrawal handled at once would otherwise each miss the other's row."""
    if uow.session.get_bind().dialect.name == "postgresql":
        uow.session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:ref))"), {"ref": child_ref})


def _honour_ended(uow, record: Transition) -> Transition:
    """A record sent on a consent already withdrawn or expired (the decision came first, the
    withdrawal was handled before this send committed) is restricted as it is saved."""
    _lock_child(uow, record.child_ref)
    rows = uow.session.execute(select(ended_consents).where(ended_consents.c.child_ref == record.child_ref)).all()
    for row in rows:
        record = record.consent_ended(row.consent_id, row.why, row.action)
    return record


def consent_ended(uow, event: ConsentWithdrawn | ConsentExpired, at: datetime) -> int:
    """A consent was withdrawn or expired: every record sent on it withholds the sections that
    rested on it from now on, for the receiving school and the sending school alike (with an
    erase, their content is deleted). Returns how many records changed."""
    why = domain.WITHDRAWN if isinstance(event, ConsentWithdrawn) else domain.EXPIRED
    action = event.action if isinstance(event, ConsentWithdrawn) else domain.RESTRICT
    with uow:
        _lock_child(uow, event.child_ref)
        found = uow.session.execute(select(ended_consents.c.action).where(
            ended_consents.c.consent_id == event.consent_id)).first()
        if found is None:
            uow.session.execute(insert(ended_consents).values(
                consent_id=event.consent_id, child_ref=event.child_ref, why=why, action=action, ended_at=at))
        elif action == domain.ERASE and found.action != domain.ERASE:
            uow.session.execute(update(ended_consents).where(
                ended_consents.c.consent_id == event.consent_id).values(action=action))
        rows = uow.session.execute(select(transitions).where(
            transitions.c.child_ref == event.child_ref,
            transitions.c.status.in_(domain.RECEIVED_STATUSES)).with_for_update()).all()
        changed = []
        for row in rows:
            record = _transition(row)
            ended = record.consent_ended(event.consent_id, why, action)
            if ended is not record:
                changed.append(ended)
        _save(uow, changed, ("included", "withheld", "sections"))
        uow.commit()
    return len(changed)


def _count(records: list[Transition], status: str) -> None:
    metrics.TRANSITIONS.labels(status).inc(len(records))
    for section, count in Counter(w.section for record in records for w in record.withheld).items():
        metrics.WITHHELD.labels(section).inc(count)


def _check_sender(caller: dict) -> None:
    if SENDER_ROLE not in caller.get("roles", ()) or not caller.get("org", "").startswith("school:"):
        raise Forbidden("only a school's transition lead prepares and sends transition records")


# --- commands -----------------------------------------------------------------------

def command_from(request: NewTransitions, caller: dict, child_ref_of) -> PrepareCohort:
    """The sending school's request as a command; child_ref from the UPN, identifiers a section."""
    pupils = []
    for pupil in request.pupils:
        identifiers = {**pupil.child.model_dump(mode="json"),
                       **(pupil.basic.model_dump(exclude_none=True) if pupil.basic else {})}
        sections = {"identifiers": identifiers, **pupil.sections.model_dump(mode="json", exclude_none=True)}
        pupils.append(PupilRecord(child_ref_of(pupil.child.upn), sections))
    return PrepareCohort(to_school=request.to_school, pupils=pupils, send=request.send, caller=caller)


def with_open_involvement(command: PrepareCohort, open_involvement) -> PrepareCohort:
    """Fill `agency_involvement` from the referrals service for pupils whose request did not supply it.

    `open_involvement(child_refs, caller)` → {child_ref: [open referrals]} (empty when the
    referrals service cannot answer). The section is then decided like any other.
    """
    missing = [p.child_ref for p in command.pupils if "agency_involvement" not in p.sections]
    if not missing:
        return command
    found = open_involvement(missing, command.caller) or {}
    pupils = []
    for pupil in command.pupils:
        involvement = found.get(pupil.child_ref) if "agency_involvement" not in pupil.sections else None
        if involvement:
            pupil = PupilRecord(pupil.child_ref, {**pupil.sections,
                                                  "agency_involvement": domain.involvement_from_referrals(involvement)})
        pupils.append(pupil)
    return dataclasses.replace(command, pupils=pupils)


# What an Idempotency-Key keeps while its records are committed, awaiting send, and not yet sent.
SENDING = "sending_transitions"


def prepare_cohort(uow, sharing, command: PrepareCohort, now: datetime, period: timedelta,
                   idempotency: tuple[str, dict] | None = None, open_involvement=None) -> list[dict]:
    """Prepare one record per pupil; with `send`, share and send them (`_send_requested`).

    With `open_involvement` (the referrals service's answer, see `with_open_involvement`),
    pupils whose request carried no `agency_involvement` get their school's open referrals.
    """
    caller = command.caller
    _check_sender(caller)
    scope = f"POST /transitions:{caller['org']}"
    if idempotency is not None:
        with uow:
            first = uow.replay(scope, idempotency[0], idempotency[1])
        if isinstance(first, dict) and SENDING in first:
            return _send_requested(uow, sharing, first[SENDING], now, period, _Answer(scope, idempotency))
        if first is not None:
            return first
    if command.to_school == caller["org"]:
        raise Invalid("a school cannot send transition records to itself",
                      [{"field": "to_school", "message": "must be another school"}])
    if open_involvement is not None:
        command = with_open_involvement(command, open_involvement)
    records = [Transition(id=record_id(scope, idempotency, index), child_ref=p.child_ref,
                          from_school=caller["org"], to_school=command.to_school, prepared_by=caller["sub"],
                          prepared_at=now, sections=p.sections) for index, p in enumerate(command.pupils)]
    if command.send:
        ids = _request_send(uow, records, now, caller, scope, idempotency)
        return _send_requested(uow, sharing, ids, now, period, _Answer(scope, idempotency))
    outcomes = _ask(sharing, records, caller, share=False)
    with uow:
        for record in records:
            uow.emit(_event(TransitionPrepared, record), subject=record.child_ref)
        records = [record.decided(outcome) for record, (outcome, _) in zip(records, outcomes, strict=True)]
        insert_rows(uow.session.connection(), transitions, [_row(r) for r in records])
        result = [_summary(r) for r in records]
        if idempotency is not None:
            uow.remember(scope, idempotency[0], idempotency[1], result)
        uow.commit()
    _count(records, domain.PREPARED)
    return result


def record_id(scope: str, idempotency: tuple[str, dict] | None, index: int) -> str:
    """A new record's id: with an Idempotency-Key, the same on every retry of the request (so its
    disclosures, keyed by it, are recorded once however often the request is retried)."""
    if idempotency is None:
        return str(uuid.uuid4())
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"pont:{scope}:{idempotency[0]}:{index}"))


def _sender(caller: dict) -> dict:
    """The claims consent is asked for, kept with a requested send so whoever completes it asks as the sender."""
    return {"sub": caller["sub"], "org": caller["org"], "roles": sorted(caller.get("roles", ()))}


def _request_send(uow, records: list[Transition], now: datetime, caller: dict, scope: str,
                  idempotency: tuple[str, dict] | None) -> list[str]:
    """Sending, step one: commit the records, prepared and awaiting send, with the Idempotency-Key
    marked `SENDING`; their ids (or, if a retry of the same request committed first, its).

    Nothing is asked of consent before this commits, so records that cannot be stored (a
    constraint, a database outage) leave nothing in its ledger.
    """
    sender = _sender(caller)
    requested = [record.request_send(now, sender) for record in records]
    ids = [record.id for record in requested]
    with uow:
        for record in requested:
            uow.emit(_event(TransitionPrepared, record), subject=record.child_ref)
        try:
            insert_rows(uow.session.connection(), transitions, [_row(r) for r in requested])
            if idempotency is not None:
                uow.remember(scope, idempotency[0], idempotency[1], {SENDING: ids})
            uow.commit()
        except IntegrityError:
            uow.rollback()
            # the same key, sent twice at once: the other request committed the records first
            first = uow.replay(scope, idempotency[0], idempotency[1]) if idempotency is not None else None
            if not (isinstance(first, dict) and SENDING in first):
                raise
            return first[SENDING]
    return ids


@dataclass(frozen=True)
class _Answer:
    """Where a completed send keeps its response: the Idempotency-Key that replays it (if any)."""

    scope: str
    idempotency: tuple[str, dict] | None

    def keep(self, uow, result: list[dict]) -> None:
        if self.idempotency is None:
            return
        table = uow.tables.idempotency
        uow.session.execute(update(table).where(table.c.scope == self.scope, table.c.key == self.idempotency[0])
                            .values(response=json.dumps(result, default=str)))


def _send_requested(uow, sharing, ids: list[str], now: datetime, period: timedelta,
                    answer: _Answer | None = None) -> list[dict]:
    """Sending, steps two and three: ask consent to share the records of `ids` awaiting send, then
    record them sent in a second transaction (and the response `answer` keeps); every record's summary.

    No transaction is open while consent is asked. Each disclosure is asked under a key naming
    its record (`_requests`), so a record asked about again — the request retried, the sweep
    (`send_unsent`), two of them at once — is answered with the same disclosure, once in the
    ledger; only the transaction that finds the record still awaiting send sends it.
    """
    with uow:
        found = _load(uow, ids)
    waiting = [found[i] for i in ids if found[i].awaiting_send]
    outcomes = {}
    for sender, records in _by_sender(waiting):
        outcomes.update(zip([r.id for r in records], _ask(sharing, records, sender, share=True), strict=True))
    with uow:
        current = _load(uow, ids, for_update=True)
        still = [current[i] for i in ids if i in outcomes and current[i].awaiting_send]
        sent = _send(uow, still, [outcomes[r.id] for r in still], now, period)
        _save(uow, sent)
        current.update((r.id, r) for r in sent)
        result = [_summary(current[i]) for i in ids]
        if answer is not None:
            answer.keep(uow, result)
        uow.commit()
    _count(sent, domain.SENT)
    return result


def _by_sender(records: list[Transition]):
    """(sender, their records) — consent is asked for the staff member who asked to send."""
    groups: dict[str, list[Transition]] = {}
    for record in records:
        groups.setdefault(json.dumps(record.send_requested_by, sort_keys=True), []).append(record)
    return [(json.loads(sender), group) for sender, group in groups.items()]


def send_unsent(uow, sharing, now: datetime, period: timedelta, older_than: timedelta, limit: int = 500) -> int:
    """Send every record whose send was committed longer than `older_than` ago and never completed.

    A crash, a restart or a consent outage between asking to send and recording the send leaves
    a record awaiting send, where only a retry with the same Idempotency-Key would take it up.
    Asked again under the same keys, consent answers with the disclosures it recorded (or
    records them now), so each is in its ledger once. How many were sent; those that still
    cannot be are left for the next sweep.
    """
    with uow:
        ids = list(uow.session.execute(
            select(transitions.c.id).where(transitions.c.status == domain.PREPARED,
                                           transitions.c.send_requested_at < now - older_than)
            .order_by(transitions.c.send_requested_at).limit(limit)).scalars())
    if not ids:
        return 0
    try:
        summaries = _send_requested(uow, sharing, ids, now, period)
    except Exception as exc:  # consent still unreachable: the next sweep asks again
        log.warning("transitions.still_unsent", records=len(ids), error=type(exc).__name__)
        return 0
    return sum(summary["status"] == domain.SENT for summary in summaries)


def send(uow, sharing, transition_id: str, caller: dict, now: datetime, period: timedelta) -> dict:
    """Send one prepared record: sections re-decided and recorded in the ledger now (as a cohort's are)."""
    _check_sender(caller)
    with uow:
        record = _load_one(uow, transition_id, for_update=True)
        _guard(record.check_sender, caller["org"])
        if record.status != domain.PREPARED:
            raise Conflict(f"this record is already {record.status}")
        if not record.awaiting_send:
            _save(uow, [record.request_send(now, _sender(caller))], ("send_requested_at", "send_requested_by"))
            uow.commit()
    [summary] = _send_requested(uow, sharing, [transition_id], now, period)
    return summary


def acknowledge(uow, transition_ids: list[str], caller: dict, now: datetime) -> list[dict]:
    """The receiving school confirms receipt; all the records or none (unknown/others' → 404)."""
    if not RECEIVER_ROLES.intersection(caller.get("roles", ())):
        raise Forbidden("only the receiving school's transition lead or DSL acknowledges")
    with uow:
        found = _load(uow, list(dict.fromkeys(transition_ids)))
        changed = []
        for transition_id in dict.fromkeys(transition_ids):
            record = found.get(transition_id)
            if record is None:
                raise NotFound(f"no transition {transition_id}")
            _guard(record.check_receiver, caller["org"])
            acknowledged = record.acknowledge(now, caller["sub"])
            if acknowledged is not record:
                uow.emit(_event(TransitionAcknowledged, acknowledged), subject=acknowledged.child_ref)
                changed.append(acknowledged)
            found[transition_id] = acknowledged
        _save(uow, changed, ("status", "acknowledged_at", "acknowledged_by"))
        uow.commit()
    _count(changed, domain.ACKNOWLEDGED)
    for record in changed:
        metrics.HANDOVER_LAG.observe(max(0.0, (record.acknowledged_at - record.sent_at).total_seconds()))
    return [_summary(found[i]) for i in dict.fromkeys(transition_ids)]


def mark_overdue(uow, now: datetime, limit: int = 1000) -> int:
    """Records sent and not acknowledged by their due time go overdue (once)."""
    with uow:
        rows = uow.session.execute(
            select(transitions).where(transitions.c.status == domain.SENT, transitions.c.due_at <= now)
            .order_by(transitions.c.due_at).limit(limit).with_for_update(skip_locked=True)).all()
        overdue = []
        for row in rows:
            record = _transition(row)
            if record.is_overdue(now):
                late = record.go_overdue(now)
                uow.emit(_event(TransitionOverdue, late), subject=late.child_ref)
                overdue.append(late)
        _save(uow, overdue, ("status", "overdue_at"))
        uow.commit()
    metrics.TRANSITIONS.labels(domain.OVERDUE).inc(len(overdue))
    metrics.OVERDUE.inc(len(overdue))
    return len(overdue)


# --- queries ------------------------------------------------------------------------

def _summary(t: Transition) -> dict:
    return {"id": t.id, "child_ref": t.child_ref, "from_school": t.from_school, "to_school": t.to_school,
            "status": t.status, "included": list(t.included), "withheld": [w.as_dict() for w in t.withheld]}


def _guard(check, org: str) -> None:
    try:
        check(org)
    except domain.NotVisible as exc:
        raise NotFound(f"no transition {exc.args[0]}") from exc


def inbox(uow, caller: dict, status: str | None = None) -> list[dict]:
    """What was sent to the caller's school: included sections (child protection for a DSL) and withheld."""
    if not RECEIVER_ROLES.intersection(caller.get("roles", ())):
        raise Forbidden("only the receiving school's transition lead or DSL reads its transitions inbox")
    for_dsl = "dsl" in caller.get("roles", ())
    statuses = [status] if status in domain.RECEIVED_STATUSES else list(domain.RECEIVED_STATUSES)
    with uow:
        rows = uow.session.execute(
            select(transitions).where(transitions.c.to_school == caller["org"], transitions.c.status.in_(statuses))
            .order_by(transitions.c.sent_at, transitions.c.id)).all()
    items = []
    for row in rows:
        record = _transition(row)
        item = {**_summary(record), "sent_at": record.sent_at, "due_at": record.due_at,
                "acknowledged_at": record.acknowledged_at, "sections": record.included_content(for_dsl=for_dsl)}
        item["included"] = list(item["sections"])
        if CHILD_PROTECTION in record.included and not for_dsl:
            item["restricted"] = [{"section": CHILD_PROTECTION, "reason": "for the designated safeguarding lead"}]
        items.append(item)
    return items


PUPIL_FIELDS = ("upn", "given_name", "family_name", "date_of_birth")


def sent_by(uow, caller: dict, status: str | None = None, to_school: str | None = None) -> list[dict]:
    """The sender's view: the caller's school's own records, oldest first, with when each was sent,
    is due, was acknowledged or went overdue, and the pupil as the school itself supplied it."""
    _check_sender(caller)
    query = select(transitions).where(transitions.c.from_school == caller["org"])
    if status in domain.STATUSES:
        query = query.where(transitions.c.status == status)
    if to_school:
        query = query.where(transitions.c.to_school == to_school)
    with uow:
        rows = uow.session.execute(query.order_by(transitions.c.prepared_at, transitions.c.id)).all()
    items = []
    for row in rows:
        record = _transition(row)
        identifiers = record.sections.get("identifiers") or {}
        pupil = {key: identifiers[key] for key in PUPIL_FIELDS if key in identifiers}
        items.append({**_summary(record), "pupil": pupil,
                      "prepared_at": record.prepared_at, "awaiting_send": record.awaiting_send,
                      "sent_at": record.sent_at, "due_at": record.due_at, "acknowledged_at": record.acknowledged_at,
                      "overdue_at": record.overdue_at})
    return items


def get(uow, transition_id: str, caller: dict) -> dict:
    with uow:
        record = _load_one(uow, transition_id)
    if not record.visible_to(caller["org"]):
        raise NotFound(f"no transition {transition_id}")
    return {**_summary(record), "sent_at": record.sent_at, "acknowledged_at": record.acknowledged_at}


def ctf_export(uow, caller: dict, now: datetime, *, transition_ids: list[str] | None = None,
               from_school: str | None = None, to_school: str | None = None) -> dict:
    """A CTF of the given records, or of a school pair's cohort: {file_name, xml, pupils, omitted}.

    A CTF cannot carry a pupil without identifiers: one such record is a conflict, and a
    cohort file leaves out the records whose identifiers were withheld, and counts them.
    """
    with uow:
        if transition_ids is not None:
            found = _load(uow, transition_ids)
            records = [found.get(i) for i in transition_ids]
        else:
            records = [_transition(r) for r in uow.session.execute(
                select(transitions).where(transitions.c.from_school == from_school,
                                          transitions.c.to_school == to_school)
                .order_by(transitions.c.prepared_at, transitions.c.id)).all()]
            records = [r for r in records if r.visible_to(caller["org"])]
        if any(r is None or not r.visible_to(caller["org"]) for r in records) or not records:
            raise NotFound("no such transition records for your school")
        pairs = {(r.from_school, r.to_school) for r in records}
        if len(pairs) != 1:
            raise Invalid("a CTF goes from one school to one school", [{"field": "ids", "message": "mixed schools"}])
        [(source, destination)] = pairs
        pupils = [ctf.ctf_sections(r.included_content(for_dsl=False)) for r in records]
        carried = [p for p in pupils if "identifiers" in p]
        if not carried or (transition_ids is not None and len(carried) < len(pupils)):
            raise Conflict("a pupil's identifiers were withheld, so no CTF can be made for that record")
        try:
            domain.ctf_file_name(source, destination, 0)
        except ValueError as exc:
            raise Conflict(f"no CTF: {exc}") from exc
        sequence = _next_sequence(uow, source, destination)
        document = ctf.export(source, destination, carried, now)
        uow.commit()
    return {"file_name": domain.ctf_file_name(source, destination, sequence),
            "xml": document.decode("utf-8"), "pupils": len(carried), "omitted": len(pupils) - len(carried)}


def _next_sequence(uow, source: str, destination: str) -> int:
    row = uow.session.execute(select(ctf_sequences.c.last).where(
        ctf_sequences.c.from_school == source, ctf_sequences.c.to_school == destination).with_for_update()).first()
    if row is None:
        uow.session.execute(insert(ctf_sequences).values(from_school=source, to_school=destination, last=1))
        return 1
    uow.session.execute(update(ctf_sequences).where(
        ctf_sequences.c.from_school == source, ctf_sequences.c.to_school == destination).values(last=row.last + 1))
    return row.last + 1
