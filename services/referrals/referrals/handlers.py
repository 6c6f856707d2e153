"""One function per command and per event. Each takes a UnitOfWork and the ports it needs."""
from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Protocol

import structlog
from sqlalchemy import bindparam, update
from sqlalchemy.exc import IntegrityError

from pont_shared.contract.caller import CallerClaims
from pont_shared.contract.errors import Conflict, Forbidden, Invalid, NotFound
from pont_shared.contract.events import (
    AgencyDecided,
    ConsentGranted,
    DisclosureDelivered,
    ReferralAccepted,
    ReferralClosed,
    ReferralDeclined,
    ReferralHeld,
    ReferralOverdue,
    ReferralRaised,
    ReferralSent,
    ReferralWithdrawn,
)
from pont_shared.contract.rpc.consent import ShareReply, ShareRequest
from pont_shared.contract.rpc.referrals import InvolvementQuery, OpenReferral, RaisedReferral, RaiseReferral
from pont_shared.identity import child_ref as derive_child_ref
from pont_shared.messaging.uow import UnitOfWork

from . import domain, metrics
from .domain import Referral, ReferralRuleBroken
from .orm import tables
from .repository import ReferralRepository, _aware

log = structlog.get_logger(__name__)

PURPOSE = "referral"
SUBJECT_KIND = "referral"


class ConsentPort(Protocol):
    """The consent service, as referrals uses it."""

    def share(self, request: dict) -> dict: ...


Clock = Callable[[], datetime]


class NotYetApplicable(Exception):
    """An agency step arrived before the step it follows; retried later by the consumer."""


def link(referral_id: str) -> str:
    return f"/api/v1/referrals/{referral_id}"


def summary(referral: Referral) -> dict:
    return {"id": referral.id, "child_ref": referral.child_ref, "status": referral.status,
            "to_org": referral.to_org, "service": referral.service, "deadline": referral.deadline,
            "shared_categories": referral.shared_categories}


def view(referral: Referral, org: str) -> dict:
    """The referral as `org` may see it: the referring school also sees the pupil, its reason and details."""
    body = {
        "id": referral.id, "child_ref": referral.child_ref, "from_org": referral.from_org,
        "to_org": referral.to_org, "service": referral.service, "urgency": referral.urgency,
        "status": referral.status, "deadline": referral.deadline, "overdue": referral.overdue_at is not None,
        "shared_categories": referral.shared_categories,
        "history": [step.as_dict() for step in referral.history],
    }
    if org == referral.from_org:
        body.update(child=referral.child, reason=referral.reason, details=referral.details, basis=referral.basis,
                    requested_categories=referral.share)
    return body


def _validate(cmd: RaiseReferral) -> None:
    """The rules beyond the request's shape (which `RaiseReferral` checks)."""
    errors = []
    for category in cmd.information:
        if category not in cmd.share:
            errors.append({"field": f"information.{category}", "message": "only categories listed in share"})
    if cmd.to_org == cmd.claims.org:
        errors.append({"field": "to_org", "message": "a referral goes to another organisation"})
    if errors:
        raise Invalid("the referral is not valid", errors)
    try:
        domain.check_basis(cmd.basis, cmd.justification, set(cmd.claims.roles))
    except PermissionError as exc:
        raise Forbidden(str(exc)) from exc
    except ReferralRuleBroken as exc:
        raise Invalid(exc.message, [{"field": exc.field, "message": exc.message}]) from exc


# What an Idempotency-Key keeps while its referral is committed but consent not yet asked or answered.
UNDECIDED = "undecided_referral"
# ... and the response it keeps once the referral is decided (`_keep_response`), built once
_KEEP_RESPONSE = update(tables.idempotency).where(tables.idempotency.c.scope == bindparam("b_scope"),
                                                  tables.idempotency.c.key == bindparam("b_key"))
# The occasions consent is asked about a referral (all under the referral's one key: `_ask`).
ON_RAISING, ASKED_AGAIN = "raised", "asked_again"


@dataclass(frozen=True)
class _Idempotency:
    scope: str
    key: str | None
    request: dict


def raise_referral(uow: UnitOfWork, cmd: RaiseReferral, *, consent: ConsentPort, clock: Clock,
                   child_ref_secret: str, holidays: frozenset[date] = frozenset()) -> RaisedReferral:
    """Record a referral, ask consent to share it, and send it or hold it.

    No transaction is open while consent is asked: on SQLite an open transaction holds the whole
    database, and anywhere it would hold the referral's rows for as long as consent takes. The
    referral is committed first (awaiting consent, nothing in its chronology yet) with its
    Idempotency-Key marked `UNDECIDED`; then consent is asked and its answer recorded; then the
    key keeps the response. A failure in between leaves the referral awaiting consent, where
    the client's retry with the same key — or a `consent.granted` — takes it up. Consent is
    asked under a key of ours (`_ask`), so a question asked again is answered as the first
    time and its disclosure is in the ledger once.
    """
    _validate(cmd)
    request = cmd.model_dump(mode="json", exclude={"caller", "idempotency_key"})
    idempotency = _Idempotency(f"raise_referral:{cmd.claims.org}", cmd.idempotency_key, request)
    first, raised = _record_raised(uow, cmd, idempotency, clock, child_ref_secret)
    if UNDECIDED not in first:
        return RaisedReferral.model_validate(first)  # the key's first response
    if raised is None:  # a retry of a request whose referral is committed but undecided
        referral = _decide(uow, first[UNDECIDED], ON_RAISING, consent=consent, clock=clock, holidays=holidays)
    else:
        referral, kept = _decide_raised(uow, raised, idempotency, consent=consent, clock=clock, holidays=holidays)
        if kept is not None:
            return RaisedReferral.model_validate(kept)
    if referral.status == domain.AWAITING_CONSENT:
        referral = _ask_again(uow, referral, consent=consent, clock=clock, holidays=holidays)
    return RaisedReferral.model_validate(_answer(uow, idempotency, summary(referral)))


def _record_raised(uow: UnitOfWork, cmd: RaiseReferral, idempotency: _Idempotency, clock: Clock,
                   child_ref_secret: str) -> tuple[dict, Referral | None]:
    """Commit the new referral, undecided, with its Idempotency-Key: `({UNDECIDED: id}, the referral)`; or
    `(the key's response, None)`. The key is not looked up first: a retry is refused by the
    open-referral index or by the key (`remember_once`), and only then is the first answer read."""
    caller = cmd.claims
    with uow:
        repo = ReferralRepository(uow.session)
        ref = derive_child_ref(cmd.child.upn, child_ref_secret)
        referral = Referral(
            id=str(uuid.uuid4()), child_ref=ref, from_org=caller.org, to_org=cmd.to_org, service=cmd.service,
            urgency=cmd.urgency, reason=cmd.reason, details=cmd.details, child=idempotency.request["child"],
            share=list(cmd.share), information=idempotency.request["information"], basis=cmd.basis,
            justification=cmd.justification, raised_by=caller.sub, raised_at=clock(),
            raised_by_roles=sorted(caller.roles),
        )
        try:
            repo.add(referral)  # the open-referral index refuses a second one, before anything is shared
        except IntegrityError:
            uow.rollback()
            # the same key, sent again while the first was running (or twice at once): the first committed
            replayed = uow.replay(idempotency.scope, idempotency.key, idempotency.request)
            if replayed is not None:
                return replayed, None
            _refuse_duplicate(repo, caller.org, ref, cmd.service)
            raise
        uow.emit(ReferralRaised(referral_id=referral.id, child_ref=ref, from_org=referral.from_org,
                                to_org=referral.to_org, service=referral.service, urgency=referral.urgency),
                 subject=ref)
        undecided = {UNDECIDED: referral.id}
        if not uow.remember_once(idempotency.scope, idempotency.key, idempotency.request, undecided):
            # the key's request came first (its referral no longer open, or a different request): its answer
            uow.rollback()
            return uow.replay(idempotency.scope, idempotency.key, idempotency.request), None
        uow.commit()
    return undecided, referral


def _decide(uow: UnitOfWork, referral_id: str, occasion: str, *, consent: ConsentPort, clock: Clock,
            holidays: frozenset[date]) -> Referral:
    """Ask consent about a referral awaiting it (outside any transaction), then record the answer.

    On raising, only a referral nothing has decided yet is asked about: a retry finds it already
    sent or held. The answer is recorded only if the referral still awaits consent when it comes.
    """
    with uow:
        referral = ReferralRepository(uow.session).get(referral_id)
    if referral is None:
        raise NotFound("no such referral")
    if referral.status != domain.AWAITING_CONSENT or (occasion == ON_RAISING and referral.history):
        return referral
    outcome = _ask(consent, referral)
    with uow:
        repo = ReferralRepository(uow.session)
        referral = _record_read(uow, repo, referral_id, outcome, clock(), holidays)
        uow.commit()
    if occasion == ON_RAISING:
        metrics.RAISED.labels(referral.status).inc()
    return referral


def _decide_raised(uow: UnitOfWork, referral: Referral, idempotency: _Idempotency, *, consent: ConsentPort,
                   clock: Clock, holidays: frozenset[date]) -> tuple[Referral, dict | None]:
    """`_decide` for the referral this worker has just committed: `(the referral as it now is, the
    response its Idempotency-Key now keeps, or None)`.

    Neither the referral nor its chronology is read back, before asking or after
    (`_record_unread`), unless another answer was recorded first. An answer that sends the
    referral is final, so its response is kept under the key in the same commit, not in a
    transaction of its own after (`_answer`). Measured in `make bench-latency`.
    """
    outcome = _ask(consent, referral)
    kept = None
    with uow:
        repo = ReferralRepository(uow.session)
        if not _record_unread(uow, repo, referral, outcome, clock(), holidays):
            referral = _record_read(uow, repo, referral.id, outcome, clock(), holidays)
        elif referral.status != domain.AWAITING_CONSENT:
            kept = summary(referral)
            _keep_response(uow, idempotency, kept)
        uow.commit()
    metrics.RAISED.labels(referral.status).inc()
    return referral, kept


def _record_read(uow: UnitOfWork, repo: ReferralRepository, referral_id: str, outcome: ShareReply, now: datetime,
                 holidays: frozenset[date]) -> Referral:
    """Record the answer on the referral as it is stored, read and locked; the referral as it now is."""
    referral = repo.get(referral_id, for_update=True)
    if _record_answer(uow, referral, outcome, now, holidays):
        repo.save(referral)
    return referral


def _record_unread(uow: UnitOfWork, repo: ReferralRepository, referral: Referral, outcome: ShareReply,
                   now: datetime, holidays: frozenset[date]) -> bool:
    """Record the answer on the referral as it was committed (awaiting consent, no chronology)
    without reading it back; False, with the transaction rolled back, if another answer was
    recorded first. The referral's status is checked as it is written (`save(..., if_status=)`)
    and its first step is unique (`ux_referral_steps_seq`), so of two answers recorded at once
    the second finds its write refused and reads what the first recorded. Measured in
    `make bench-latency`: two statements fewer on every referral raised.
    """
    if not _record_answer(uow, referral, outcome, now, holidays):
        return True
    try:
        if repo.save(referral, if_status=domain.AWAITING_CONSENT):
            return True
    except IntegrityError:
        pass
    uow.rollback()
    return False


def _ask_again(uow: UnitOfWork, referral: Referral, *, consent: ConsentPort, clock: Clock,
               holidays: frozenset[date]) -> Referral:
    """Ask once more now that the held referral is committed; the referral as it then is.

    A consent granted while the referral was being raised may have committed after the first
    answer, and its `consent.granted` been handled before the hold was committed, when there was
    nothing held for `on_consent_granted` to release. Asking after the commit closes that gap: a
    grant committed later than this question is announced by an event that finds the referral
    held. Whichever of the two records its answer first sends it; the other finds it sent.
    """
    try:
        return _decide(uow, referral.id, ASKED_AGAIN, consent=consent, clock=clock, holidays=holidays)
    except Exception as exc:  # the referral is held and committed; a covering consent.granted still releases it
        log.warning("referral.ask_again_failed", referral_id=referral.id, error=type(exc).__name__)
        return referral


def _answer(uow: UnitOfWork, idempotency: _Idempotency, response: dict) -> dict:
    """Keep `response` as the one the Idempotency-Key replays; or, if a retry of the same request
    answered first, that one's."""
    if not idempotency.key:
        return response
    with uow:
        first = uow.replay(idempotency.scope, idempotency.key, idempotency.request)
        if first is not None and UNDECIDED not in first:
            return first
        _keep_response(uow, idempotency, response)
        uow.commit()
    return response


def _keep_response(uow: UnitOfWork, idempotency: _Idempotency, response: dict) -> None:
    """In the open transaction: the key, which kept `UNDECIDED`, now keeps `response`."""
    if idempotency.key:
        uow.session.execute(_KEEP_RESPONSE, {"b_scope": idempotency.scope, "b_key": idempotency.key,
                                             "response": json.dumps(response, default=_iso)})


def _iso(value) -> str:
    """Times kept in RFC 3339, as the gateway writes them, so a replay reads as the first answer did."""
    return value.isoformat() if isinstance(value, date | datetime) else str(value)


def _refuse_duplicate(repo: ReferralRepository, org: str, ref: str, service: str) -> None:
    existing = repo.find_open(org, ref, service)
    if existing is not None:
        raise Conflict("this child already has an open referral to this service",
                       {"existing": link(existing.id), "existing_id": existing.id})


def _raiser(referral: Referral) -> CallerClaims:
    """The staff member who raised the referral, as the caller of every consent question about it."""
    return CallerClaims(sub=referral.raised_by, org=referral.from_org, roles=list(referral.raised_by_roles))


def _share_request(referral: Referral) -> ShareRequest:
    """The question about a referral, under the one key that names it (see `_ask`)."""
    statutory = referral.basis != "consent"
    return ShareRequest(
        child_ref=referral.child_ref, from_org=referral.from_org, to_org=referral.to_org, purpose=PURPOSE,
        categories=list(referral.share), caller=_raiser(referral), subject_kind=SUBJECT_KIND,
        subject_id=referral.id, basis=referral.basis if statutory else None,
        justification=referral.justification if statutory else None, idempotency_key=f"referral:{referral.id}")


def _ask(consent: ConsentPort, referral: Referral) -> ShareReply:
    """Ask consent to share the referral (it records the disclosure of what it allows).

    Called with no transaction open. A referral is sent once, so every question about it — on
    raising, asked again, on a `consent.granted`, by the sweep, retried or redelivered — goes
    under the one key that names it: consent answers a question after the first that shared
    something from its own record, so the disclosure is in its ledger once even when two of them
    are asked at the same moment (consent answers them in turn). An answer that shared nothing
    is not kept, so a later question is decided afresh.
    """
    return ShareReply.read(consent.share(_share_request(referral).wire()))


def _record_answer(uow: UnitOfWork, referral: Referral, outcome: ShareReply, now: datetime,
                   holidays: frozenset[date]) -> bool:
    """Send what consent allowed, or hold the referral; True if that changed it.

    A referral that no longer awaits consent (another question's answer sent it first) is left
    as it is; a disclosure consent recorded for this answer is then logged as unused.
    """
    allowed = [d for d in outcome.allowed if d.category in referral.share]
    disclosure_id = outcome.disclosure_id
    if referral.status != domain.AWAITING_CONSENT:
        if disclosure_id and disclosure_id != referral.disclosure_id:
            log.warning("referral.disclosure_unused", referral_id=referral.id, disclosure_id=disclosure_id,
                        status=referral.status)
        return False
    if not allowed or not disclosure_id:
        if referral.history:
            return False
        referral.hold(now, referral.raised_by)
        missing = [d.category for d in outcome.decisions if not d.allowed] or list(referral.share)
        uow.emit(ReferralHeld(referral_id=referral.id, child_ref=referral.child_ref, to_org=referral.to_org,
                              missing_categories=missing), subject=referral.child_ref)
        return True
    categories = [d.category for d in allowed]
    referral.send(now, referral.raised_by, disclosure_id=disclosure_id, categories=categories, holidays=holidays)
    basis = allowed[0].basis or referral.basis
    basis_ref = allowed[0].basis_ref or disclosure_id
    content = referral.disclosure_content(categories)
    # the agency restricts by these when consent is withdrawn: which basis each category came under
    content["basis_refs"] = {d.category: d.basis_ref for d in allowed}
    uow.emit(ReferralSent(referral_id=referral.id, child_ref=referral.child_ref, to_org=referral.to_org,
                          basis=basis, deadline=referral.deadline), subject=referral.child_ref)
    uow.emit(DisclosureDelivered(
        disclosure_id=disclosure_id, child_ref=referral.child_ref, to_org=referral.to_org,
        from_org=referral.from_org, purpose=PURPOSE, subject_kind=SUBJECT_KIND, subject_id=referral.id,
        basis=basis, basis_ref=basis_ref, content=content,
    ), subject=referral.child_ref)
    return True


def get_referral(uow: UnitOfWork, referral_id: str, caller: dict) -> dict:
    with uow:
        referral = ReferralRepository(uow.session).get(referral_id)
    if referral is None or not referral.visible_to(caller["org"]):
        raise NotFound("no such referral")
    return view(referral, caller["org"])


def list_referrals(uow: UnitOfWork, caller: dict, status: str | None = None, child_ref: str | None = None) -> list:
    with uow:
        found = ReferralRepository(uow.session).list_for(caller["org"], status, child_ref)
    return [view(referral, caller["org"]) for referral in found]


MAX_CHILDREN_FOUND = 50


def find_children(uow: UnitOfWork, caller: dict, child_ref: str | None = None, name: str | None = None) -> list:
    """The pupils the caller's school has referred, by child_ref or by name, most recently referred first.

    Each with the details the school last gave and how many referrals it raised for them; at most
    MAX_CHILDREN_FOUND. Only the school's own referrals are searched: another school's pupils are not there.
    """
    if not str(caller.get("org", "")).startswith("school:"):
        raise Forbidden("a school finds its own pupils")
    with uow:
        rows = ReferralRepository(uow.session).children_of(caller["org"], child_ref)
    found: dict[str, dict] = {}
    for row in rows:  # oldest first: the latest details stand
        if name is not None and not domain.name_matches(row["child"], name):
            continue
        earlier = found.pop(row["child_ref"], {"referrals": 0})
        found[row["child_ref"]] = {"child_ref": row["child_ref"], **{key: row["child"].get(key) for key in (
            "upn", "given_name", "family_name", "date_of_birth")}, "referrals": earlier["referrals"] + 1,
            "last_referred_at": _aware(row["raised_at"]).isoformat()}
    return list(reversed(found.values()))[:MAX_CHILDREN_FOUND]


OPEN_INVOLVEMENT_BATCH = 1000


def open_involvement(uow: UnitOfWork, query: InvolvementQuery, caller: dict) -> dict[str, list[OpenReferral]]:
    """The caller's school's open referrals for these children. Codes and organisation ids only —
    never the reason or details of a referral."""
    if not str(caller.get("org", "")).startswith("school:"):
        raise Forbidden("open agency involvement is read by the referring school")
    refs = list(dict.fromkeys(query.child_refs))
    found: dict[str, list[OpenReferral]] = {}
    with uow:
        repo = ReferralRepository(uow.session)
        for start in range(0, len(refs), OPEN_INVOLVEMENT_BATCH):
            for row in repo.open_of(caller["org"], refs[start:start + OPEN_INVOLVEMENT_BATCH]):
                found.setdefault(row["child_ref"], []).append(OpenReferral(
                    service=row["service"], to_org=row["to_org"], status=row["status"],
                    since=_aware(row["raised_at"]).date()))
    return found


def withdraw_referral(uow: UnitOfWork, referral_id: str, caller: dict, *, clock: Clock) -> dict:
    """The referring school withdraws its referral."""
    with uow:
        repo = ReferralRepository(uow.session)
        referral = repo.get(referral_id, for_update=True)
        if referral is None or referral.from_org != caller["org"]:
            raise NotFound("no such referral")
        try:
            referral.withdraw(clock(), caller["sub"])
        except ReferralRuleBroken as exc:
            raise Conflict(exc.message) from exc
        repo.save(referral)
        uow.emit(ReferralWithdrawn(referral_id=referral.id, child_ref=referral.child_ref, by_org=caller["org"]),
                 subject=referral.child_ref)
        uow.commit()
    return {"id": referral.id, "status": referral.status}


def on_consent_granted(uow: UnitOfWork, event: ConsentGranted, *, consent: ConsentPort, clock: Clock,
                       holidays: frozenset[date] = frozenset()) -> int:
    """Release the child's held referrals to recipients this consent covers; returns how many were sent.

    Consent is asked with no transaction open, about each referral under its key (a redelivered
    event asks again and is answered as before); the answers and the event's inbox record commit
    together.
    """
    waiting: list[Referral] = []
    with uow:
        if PURPOSE in [getattr(p, "value", p) for p in event.purposes]:
            repo = ReferralRepository(uow.session)
            waiting = [referral for to_org in event.recipients for referral in repo.held_for(event.child_ref, to_org)]
    answers = {referral.id: _ask(consent, referral) for referral in waiting}
    released = 0
    with uow:
        repo = ReferralRepository(uow.session)
        now = clock()
        for referral_id, outcome in answers.items():
            referral = repo.get(referral_id, for_update=True)
            if referral is not None and _record_answer(uow, referral, outcome, now, holidays):
                repo.save(referral)
                if referral.status == domain.SENT:
                    released += 1
        uow.commit()
    return released


_STEP_EVENTS = {
    domain.ACCEPTED: ReferralAccepted,
    domain.DECLINED: ReferralDeclined,
    domain.CLOSED: ReferralClosed,
}


def on_agency_decided(uow: UnitOfWork, event: AgencyDecided, at: datetime) -> None:
    """The recipient's decision moves the referral and goes into its chronology."""
    with uow:
        if event.subject_kind == SUBJECT_KIND and event.decision in _STEP_EVENTS:
            repo = ReferralRepository(uow.session)
            referral = repo.get(event.subject_id, for_update=True)
            if referral is not None and referral.to_org == event.org:
                _apply_agency_step(uow, repo, referral, event, at)
        uow.commit()


def _apply_agency_step(uow, repo, referral: Referral, event: AgencyDecided, at: datetime) -> None:
    if referral.status in (domain.WITHDRAWN, domain.CLOSED):
        log.info("referral.agency_step_ignored", referral_id=referral.id, status=referral.status)
        return
    if any(step.status == event.decision and step.by == event.by for step in referral.history[-1:]):
        return  # the same decision twice (e.g. re-sent by the agency): one line in the chronology
    try:
        referral.record_agency_step(event.decision, at, event.by, event.reason_code)
    except ReferralRuleBroken as exc:
        # e.g. "closed" overtook "accepted" on the way: try again once the earlier step is in
        raise NotYetApplicable(exc.message) from exc
    repo.save(referral)
    uow.emit(_STEP_EVENTS[event.decision](referral_id=referral.id, child_ref=referral.child_ref, by_org=event.org),
             subject=referral.child_ref)


def decide_undecided(uow: UnitOfWork, *, consent: ConsentPort, clock: Clock, older_than: timedelta,
                     holidays: frozenset[date] = frozenset()) -> int:
    """Ask consent about every referral committed but left undecided for longer than `older_than`.

    Raising commits the referral before asking consent; a crash, a restart or a consent outage
    between the two leaves it awaiting consent with nothing in its chronology, where no event
    would ever take it up. Asked again under the raising question's own key, consent answers as
    it did (or would have) the first time, so the disclosure is in its ledger once. How many were
    decided; one that still cannot be is left for the next sweep.
    """
    with uow:
        waiting = ReferralRepository(uow.session).undecided_before(clock() - older_than)
    decided = 0
    for referral_id in waiting:
        try:
            referral = _decide(uow, referral_id, ON_RAISING, consent=consent, clock=clock, holidays=holidays)
        except Exception as exc:  # consent still unreachable: the next sweep asks again
            log.warning("referral.still_undecided", referral_id=referral_id, error=type(exc).__name__)
            continue
        if referral.status == domain.AWAITING_CONSENT:
            referral = _ask_again(uow, referral, consent=consent, clock=clock, holidays=holidays)
        decided += bool(referral.history)
    return decided


def mark_overdue(uow: UnitOfWork, *, clock: Clock) -> int:
    """Report every sent referral whose response deadline has passed, once; refresh the status gauge."""
    now = clock()
    with uow:
        repo = ReferralRepository(uow.session)
        due = [referral for referral in repo.due_by(now) if referral.is_overdue(now)]
        for referral in due:
            referral.mark_overdue(now)
            repo.save(referral)
            uow.emit(ReferralOverdue(referral_id=referral.id, child_ref=referral.child_ref, to_org=referral.to_org,
                                     urgency=referral.urgency, deadline=referral.deadline),
                     subject=referral.child_ref)
        counts = repo.counts_by_status()
        uow.commit()
    for referral in due:
        metrics.OVERDUE.labels(referral.urgency).inc()
    for status in domain.STATUSES:
        metrics.BY_STATUS.labels(status).set(counts.get(status, 0))
    return len(due)
