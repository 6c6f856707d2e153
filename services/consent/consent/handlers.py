"""One function per command: each takes a UnitOfWork, the input and the time it is."""
from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import bindparam, cast, insert, or_, select, text, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import IntegrityError

from pont_shared.contract.caller import CallerClaims
from pont_shared.contract.errors import Conflict, Forbidden, Invalid, NotFound
from pont_shared.contract.events import (
    ConsentExpired,
    ConsentGranted,
    ConsentWithdrawn,
    DisclosureRecorded,
    LedgerAnchored,
)
from pont_shared.contract.rpc.consent import (
    AgreementView,
    ConsentRecorded,
    ConsentStatus,
    DecideReply,
    DecideRequest,
    NewAgreement,
    RecordConsent,
    ShareReply,
    ShareRequest,
)
from pont_shared.identity import child_ref as derive_child_ref
from pont_shared.messaging.db import insert_rows
from pont_shared.messaging.uow import UnitOfWork

from . import domain, metrics
from .domain import Agreement, Consent, LedgerEntry, NotPermitted, RuleViolation
from .orm import (
    agreement_from,
    agreement_row,
    agreements,
    consent_from,
    consent_row,
    consents,
    ledger,
    ledger_entry_from,
    ledger_row,
)

LEDGER_LOCK_KEY = 0x506F6E74  # "Pont": one advisory lock serialises appends to the chain
# on every share's path, built once (a statement's building can cost more CPU than its execution)
_LOCK_LEDGER = text("SELECT pg_advisory_xact_lock(:key)")
_CHAIN_HEAD = select(ledger).order_by(ledger.c.seq.desc()).limit(1)
_CONSENTS_OF = select(consents).where(consents.c.child_ref.in_(bindparam("children", expanding=True)))


def _invalid(exc: RuleViolation) -> Invalid:
    return Invalid(f"{exc.field}: {exc.message}", [{"field": exc.field, "message": exc.message}])


def _caller(caller: dict) -> CallerClaims:
    """The caller's claims, as `pont_shared.messaging.rpc.Rpc` verified them."""
    return CallerClaims.model_validate(caller)


# --- agreements ----------------------------------------------------------------------

def create_agreement(uow: UnitOfWork, data: NewAgreement, caller: dict, now: datetime) -> AgreementView:
    """A proposed agreement; the proposer's organisation, if a party, has approved it."""
    who = _admin(caller)
    try:
        new = Agreement.create(str(uuid.uuid4()), data.parties, data.purposes, data.categories,
                               data.valid_from, data.valid_to, created_by=who.sub, proposed_by_org=who.org)
    except RuleViolation as exc:
        raise _invalid(exc) from None
    with uow:
        uow.session.execute(insert(agreements).values(**agreement_row(new, now)))
        uow.commit()
    return _agreement_view(new, now)


def approve_agreement(uow: UnitOfWork, agreement_id: str, caller: dict, now: datetime) -> AgreementView:
    """The approval of the caller's organisation, a party; approving twice changes nothing."""
    who = _admin(caller)
    with uow:
        row = _agreement_row(uow, agreement_id)
        current = agreement_from(row)
        approved = _agreement_rule(lambda: current.approved_by(who.org))
        if approved != current:
            approvals = [*row.approvals, {"org": who.org, "by": who.sub, "at": now.isoformat()}]
            uow.session.execute(update(agreements).where(agreements.c.id == current.id).values(approvals=approvals))
            uow.commit()
    return _agreement_view(approved, now)


def revoke_agreement(uow: UnitOfWork, agreement_id: str, reason: str, caller: dict,
                     now: datetime) -> AgreementView:
    """Revoked by a party or the proposer: no new sharing rests on it from now on."""
    who = _admin(caller)
    with uow:
        current = agreement_from(_agreement_row(uow, agreement_id))
        revoked = _agreement_rule(lambda: current.revoked_by(who.org, now))
        uow.session.execute(update(agreements).where(agreements.c.id == current.id).values(
            revoked_at=now, revoked_by=who.sub, revocation_reason=reason))
        uow.commit()
    return _agreement_view(revoked, now)


def list_agreements(uow: UnitOfWork, caller: dict, now: datetime) -> list[AgreementView]:
    """The agreements the caller's organisation is a party to or proposed."""
    who = _admin(caller)
    with uow:
        found = [agreement_from(row) for row in uow.session.execute(
            select(agreements).order_by(agreements.c.created_at))]
    return [_agreement_view(agreement, now) for agreement in found if agreement.visible_to(who.org)]


def _admin(caller: dict) -> CallerClaims:
    who = _caller(caller)
    if "admin" not in who.roles:
        raise Forbidden("only an administrator handles information-sharing agreements")
    return who


def _agreement_row(uow: UnitOfWork, agreement_id: str):
    row = uow.session.execute(select(agreements).where(agreements.c.id == str(agreement_id))
                              .with_for_update()).first()
    if row is None:
        raise NotFound("no such agreement")
    return row


def _agreement_rule(change):
    try:
        return change()
    except domain.NotVisible:
        raise NotFound("no such agreement") from None
    except NotPermitted as exc:
        raise Forbidden(str(exc)) from None
    except RuleViolation as exc:
        raise Conflict(exc.message) from None


def _agreement_view(agreement: Agreement, now: datetime) -> AgreementView:
    return AgreementView(
        id=agreement.id, status=agreement.status(now.date()), parties=sorted(agreement.parties),
        purposes=sorted(agreement.purposes), categories=sorted(agreement.categories),
        valid_from=agreement.valid_from, valid_to=agreement.valid_to,
        proposed_by_org=agreement.proposed_by_org, approved_by=sorted(agreement.approvals),
        awaiting=sorted(agreement.awaiting), revoked_at=_aware(agreement.revoked_at))


# --- consents ------------------------------------------------------------------------

def record_consent(uow: UnitOfWork, data: RecordConsent, caller: dict, idempotency_key: str | None, now: datetime,
                   child_ref_secret: str) -> ConsentRecorded:
    who = _caller(caller)
    consent = data.wire()  # what the Idempotency-Key was first used with
    ref = derive_child_ref(data.child.upn, child_ref_secret)
    try:
        new = Consent.record(
            id=str(uuid.uuid4()), child_ref=ref, relationship=data.given_by.relationship,
            competence_assessed=data.competence_assessed, date_of_birth=data.child.date_of_birth,
            recipients=data.recipients, purposes=data.purposes, categories=data.categories,
            evidence=data.evidence, expires_on=data.expires_on, recorded_by_org=who.org, recorded_by=who.sub,
            now=now)
    except RuleViolation as exc:
        raise _invalid(exc) from None
    scope = f"record_consent:{who.org}"
    result = ConsentRecorded(id=new.id, child_ref=ref, status=domain.ACTIVE)
    try:
        with uow:
            first = uow.replay(scope, idempotency_key, consent)
            if first is not None:
                return ConsentRecorded.model_validate(first)
            insert_consent(uow, new, data.given_by.name)
            uow.remember(scope, idempotency_key, consent, result.wire())
            uow.commit()
    except IntegrityError:
        # the same key raced in from a second request: answer with the first one's result
        with uow:
            first = uow.replay(scope, idempotency_key, consent)
        if first is None:
            raise
        return ConsentRecorded.model_validate(first)
    return result


def insert_consent(uow: UnitOfWork, new: Consent, given_by_name: str) -> None:
    """Store a consent just given, and announce it (held referrals wait for it)."""
    uow.session.execute(insert(consents).values(**consent_row(new), given_by_name=given_by_name))
    uow.emit(ConsentGranted(consent_id=new.id, child_ref=new.child_ref, recipients=list(new.recipients),
                            purposes=list(new.purposes), categories=list(new.categories),
                            expires_on=new.expires_on), subject=new.child_ref)


def withdraw_consent(uow: UnitOfWork, consent_id: str, reason: str, caller: dict, now: datetime,
                     ledger_key: domain.LedgerKeys, *, erase: bool = False) -> ConsentStatus:
    """Withdraw; every holder of a copy disclosed on it restricts it (`erase`: deletes its details)."""
    who = _caller(caller)
    return withdraw(uow, consent_id, who, lambda consent: consent.visible_to(who.org), reason, now, ledger_key,
                    erase=erase)


def withdraw(uow: UnitOfWork, consent_id: str, who: CallerClaims, may: Callable[[Consent], bool], reason: str,
             now: datetime, ledger_key: domain.LedgerKeys, *, erase: bool = False,
             evidence: str | None = None) -> ConsentStatus:
    """Withdraw the consent if `may` allows `who` to (else: not found), recording the withdrawal in the
    ledger and telling every holder; `evidence` "portal" when the family did it themselves."""
    with uow:
        _lock_ledger(uow)
        row = uow.session.execute(select(consents).where(consents.c.id == str(consent_id))).first()
        if row is None or not may(consent_from(row)):
            raise NotFound("no such consent")
        current = consent_from(row)
        if current.status == domain.WITHDRAWN:
            if erase:  # withdrawn before, erased now: the holders are told to erase what they restricted
                uow.emit(ConsentWithdrawn(consent_id=current.id, child_ref=current.child_ref,
                                          recipients=_received_under(uow, current.id), action="erase"),
                         subject=current.child_ref)
                uow.commit()
            return ConsentStatus(id=current.id, status=domain.WITHDRAWN)
        try:
            withdrawn = current.withdraw(now)
        except RuleViolation as exc:
            raise Conflict(exc.message) from None
        uow.session.execute(update(consents).where(consents.c.id == current.id).values(
            status=withdrawn.status, status_changed_at=now, withdrawal_reason=reason or None,
            withdrawal_evidence=evidence))
        receivers = _received_under(uow, current.id)
        _append(uow, ledger_key, LedgerEntry(
            seq=0, id=str(uuid.uuid4()), kind="withdrawal", at=now, child_ref=current.child_ref,
            from_org=who.org, to_org=None, purpose=None, categories=current.categories, basis=domain.CONSENT,
            basis_ref=current.id, by=who.sub, recipients=tuple(receivers)))
        uow.emit(ConsentWithdrawn(consent_id=current.id, child_ref=current.child_ref, recipients=receivers,
                                  action="erase" if erase else "restrict"), subject=current.child_ref)
        uow.commit()
    metrics.CONSENT_WITHDRAWALS.inc()
    return ConsentStatus(id=withdrawn.id, status=domain.WITHDRAWN)


def expire_consents(uow: UnitOfWork, now: datetime) -> int:
    """Mark every active consent whose expiry date has passed as expired; announce each."""
    today = now.date()
    with uow:
        _lock_ledger(uow)
        rows = uow.session.execute(select(consents).where(
            consents.c.status == domain.ACTIVE, consents.c.expires_on < today)).all()
        for row in rows:
            lapsed = consent_from(row).expire(now)
            uow.session.execute(update(consents).where(
                consents.c.id == lapsed.id, consents.c.status == domain.ACTIVE).values(
                status=lapsed.status, status_changed_at=now))
            uow.emit(ConsentExpired(consent_id=lapsed.id, child_ref=lapsed.child_ref,
                                    recipients=_received_under(uow, lapsed.id)), subject=lapsed.child_ref)
        uow.commit()
    metrics.CONSENTS_EXPIRED.inc(len(rows))
    return len(rows)


def list_consents(uow: UnitOfWork, child_ref: str, caller: dict, now: datetime) -> list[dict]:
    who = _caller(caller)
    with uow:
        rows = uow.session.execute(select(consents).where(consents.c.child_ref == str(child_ref))
                                   .order_by(consents.c.recorded_at)).all()
    visible = [consent_from(row) for row in rows if consent_from(row).visible_to(who.org)]
    if not visible:
        raise NotFound("no consent record for this child")
    return [_consent_view(c, now) for c in visible]


def _consent_view(consent: Consent, now: datetime) -> dict:
    status = domain.EXPIRED if consent.status == domain.ACTIVE and consent.has_lapsed(now.date()) else consent.status
    return {
        "id": consent.id, "child_ref": consent.child_ref, "status": status,
        "given_by": {"relationship": consent.relationship}, "competence_assessed": consent.competence_assessed,
        "recipients": list(consent.recipients), "purposes": list(consent.purposes),
        "categories": list(consent.categories), "evidence": consent.evidence,
        "expires_on": consent.expires_on.isoformat() if consent.expires_on else None,
        "recorded_by_org": consent.recorded_by_org, "recorded_by": consent.recorded_by,
        "recorded_at": _iso(consent.recorded_at),
        "status_changed_at": _iso(consent.status_changed_at),
    }


# --- decisions and the ledger --------------------------------------------------------

def decide(uow: UnitOfWork, request: DecideRequest, now: datetime) -> DecideReply:
    """Ask only: the decision per category; nothing is recorded."""
    return decide_many(uow, [request], now)[0]


def decide_many(uow: UnitOfWork, commands: list[DecideRequest], now: datetime) -> list[DecideReply]:
    """Several questions at once (a cohort), answered in order; nothing is recorded."""
    with uow:
        known = _Known.load(uow, commands)
        decisions = [_decide(known, data, now) for data in commands]
    _count(decisions)
    return [DecideReply.model_validate(decision.as_dict()) for decision in decisions]


def share(uow: UnitOfWork, request: ShareRequest, now: datetime, ledger_key: domain.LedgerKeys) -> ShareReply:
    """Decide and, in the same transaction, append the disclosure of the allowed categories to the ledger."""
    return share_many(uow, [request], now, ledger_key)[0]


class _AskedBefore(Exception):
    """A question's Idempotency-Key was found taken as its answer was kept: answer the batch again, looking first."""


def share_many(uow: UnitOfWork, commands: list[ShareRequest], now: datetime,
               ledger_key: domain.LedgerKeys) -> list[ShareReply]:
    """`share` for several requests in one transaction, answered in order.

    The work is done per batch, not per request: the agreements and the children's consents
    are read once, the chain's head is read once and carried in memory (the advisory lock is
    held throughout, so no other writer can append meanwhile), and the ledger rows are
    inserted together before the commit.

    A question asked again is answered as the first time. Most are asked once, so a key is not
    looked up first: the answer that shared something is kept under it with `remember_once`,
    and a key found taken there rolls the batch back to be answered again, each key looked up
    before its question is decided (measured in `make bench-latency`: a statement less on every
    referral shared). An answer that shared nothing is not kept; its key is looked up after.
    """
    try:
        return _share_batch(uow, commands, now, ledger_key, look_first=False)
    except _AskedBefore:
        return _share_batch(uow, commands, now, ledger_key, look_first=True)


def _share_batch(uow: UnitOfWork, commands: list[ShareRequest], now: datetime, ledger_key: domain.LedgerKeys,
                 *, look_first: bool) -> list[ShareReply]:
    results, decisions = [], []
    with uow:
        _lock_ledger(uow)
        known = _Known.load(uow, commands)
        chain = _Chain(uow, ledger_key)
        for data in commands:
            scope, request = f"share:{data.from_org}", data.wire()
            first = uow.replay(scope, data.idempotency_key, request) if look_first else None
            if first is not None:
                results.append(ShareReply.model_validate(first))
                continue
            decision = _decide(known, data, now)
            result = ShareReply.model_validate(
                {**decision.as_dict(), "disclosure_id": _record_disclosure(uow, chain, data, decision, now)})
            if result.disclosure_id is not None:  # nothing shared is nothing to repeat: asked again, decide afresh
                if not uow.remember_once(scope, data.idempotency_key, request, result.wire()):
                    raise _AskedBefore()
            elif not look_first and (first := uow.replay(scope, data.idempotency_key, request)) is not None:
                results.append(ShareReply.model_validate(first))
                continue
            decisions.append(decision)
            results.append(result)
        chain.write()
        uow.commit()
    _count(decisions)
    return results


def _record_disclosure(uow: UnitOfWork, chain: _Chain, data: ShareRequest, decision: domain.Decision,
                       now: datetime) -> str | None:
    """Append one ledger entry for the allowed categories and announce it; None when nothing is allowed."""
    allowed = decision.allowed
    if not allowed:
        return None
    # the entry names the basis of its first category; consent_refs lists every consent it rests on
    basis, basis_ref = allowed[0].basis, allowed[0].basis_ref
    consent_refs = tuple(dict.fromkeys(d.basis_ref for d in allowed if d.basis == domain.CONSENT))
    entry = chain.append(LedgerEntry(
        seq=0, id=str(uuid.uuid4()), kind="disclosure", at=now, child_ref=data.child_ref,
        from_org=data.from_org, to_org=data.to_org, purpose=data.purpose,
        categories=tuple(d.category for d in allowed), basis=basis, basis_ref=basis_ref,
        by=data.claims.sub, flagged_for_review=decision.flagged_for_review,
        subject_kind=data.subject_kind, subject_id=data.subject_id,
        justification=data.justification if decision.flagged_for_review else None, consent_refs=consent_refs))
    uow.emit(DisclosureRecorded(
        disclosure_id=entry.id, child_ref=entry.child_ref, from_org=entry.from_org, to_org=entry.to_org,
        purpose=entry.purpose, categories=list(entry.categories), basis=entry.basis,
        basis_ref=entry.basis_ref), subject=entry.child_ref)
    return entry.id


def disclosures(uow: UnitOfWork, child_ref: str, caller: dict) -> list[dict]:
    """What was shared about this child, with whom and why — as far as the caller's organisation may see.

    Every caller, an admin included, sees only the disclosures its own organisation made or received.
    """
    who = _caller(caller)
    with uow:
        query = select(ledger).where(ledger.c.child_ref == str(child_ref)).order_by(ledger.c.seq)
        entries = [ledger_entry_from(row) for row in uow.session.execute(query)]
        known = any(consent_from(row).visible_to(who.org)
                    for row in uow.session.execute(select(consents).where(consents.c.child_ref == str(child_ref))))
    entries = [e for e in entries if who.org in (e.from_org, e.to_org) or who.org in e.recipients]
    if not entries and not known:
        raise NotFound("no record of this child")
    return [_entry_view(e) for e in entries]


def _entry_view(entry: LedgerEntry) -> dict:
    return {
        "id": entry.id, "seq": entry.seq, "kind": entry.kind, "at": _iso(entry.at),
        "from_org": entry.from_org, "to_org": entry.to_org, "purpose": entry.purpose,
        "categories": list(entry.categories), "basis": entry.basis, "basis_ref": entry.basis_ref, "by": entry.by,
        "flagged_for_review": entry.flagged_for_review, "subject_kind": entry.subject_kind,
        "subject_id": entry.subject_id, "justification": entry.justification,
        "recipients": list(entry.recipients),
    }


def _iso(at: datetime | None) -> str | None:
    """RFC 3339 with its zone, whatever the database handed back (SQLite forgets the zone)."""
    aware = _aware(at)
    return aware.isoformat() if aware else None


def _aware(at: datetime | None) -> datetime | None:
    return at if at is None or at.tzinfo else at.replace(tzinfo=UTC)


class _Known:
    """What a batch of questions rests on, read once: the agreements and the children's consents."""

    def __init__(self, agreements_found: list[Agreement], consents_found: list[Consent]):
        self._agreements = agreements_found
        self._by_pair: dict[tuple[str, str], list[Agreement]] = {}
        self._by_child: dict[str, list[Consent]] = {}
        for consent in consents_found:
            self._by_child.setdefault(consent.child_ref, []).append(consent)

    @classmethod
    def load(cls, uow: UnitOfWork, commands: list[DecideRequest]) -> _Known:
        pairs = {(data.from_org, data.to_org) for data in commands}
        children = sorted({data.child_ref for data in commands})
        query = select(agreements)
        if pairs and uow.session.get_bind().dialect.name == "postgresql":
            # only agreements naming both organisations of some question can cover it
            parties = cast(agreements.c.parties, JSONB)
            query = query.where(or_(*(parties.contains(sorted({a, b})) for a, b in pairs)))
        found_agreements = [agreement_from(row) for row in uow.session.execute(query)] if pairs else []
        found_consents = [consent_from(row) for row in uow.session.execute(
            _CONSENTS_OF, {"children": children})] if children else []
        return cls(found_agreements, found_consents)

    def agreements_between(self, from_org: str, to_org: str) -> list[Agreement]:
        pair = (from_org, to_org)
        if pair not in self._by_pair:
            self._by_pair[pair] = [a for a in self._agreements if from_org in a.parties and to_org in a.parties]
        return self._by_pair[pair]

    def consents_of(self, child_ref: str) -> list[Consent]:
        return self._by_child.get(child_ref, [])


def _decide(known: _Known, data: DecideRequest, now: datetime) -> domain.Decision:
    try:
        request = domain.SharingRequest(
            child_ref=data.child_ref, from_org=data.from_org, to_org=data.to_org, purpose=data.purpose,
            categories=tuple(data.categories), caller_sub=data.claims.sub, caller_roles=frozenset(data.claims.roles),
            basis=data.basis, justification=data.justification)
        domain.check_statutory_assertion(request)
    except RuleViolation as exc:
        raise _invalid(exc) from None
    except NotPermitted as exc:
        raise Forbidden(str(exc)) from None
    return domain.decide(request, known.agreements_between(data.from_org, data.to_org),
                         known.consents_of(data.child_ref), now.date())


def _count(decisions: list[domain.Decision]) -> None:
    counted = Counter(("allowed" if d.allowed else "denied", d.basis or "none")
                      for decision in decisions for d in decision.decisions)
    for (result, basis), count in counted.items():
        metrics.SHARING_DECISIONS.labels(result, basis).inc(count)


def _lock_ledger(uow: UnitOfWork) -> None:
    """Serialise ledger appends (and the consent reads before them) so the chain cannot fork."""
    if uow.session.get_bind().dialect.name == "postgresql":
        uow.session.execute(_LOCK_LEDGER, {"key": LEDGER_LOCK_KEY})


class _Chain:
    """The end of the ledger chain, read once and carried in memory while the ledger lock is held.

    Entries are sealed in order onto the head; `write` inserts them all at once.
    """

    def __init__(self, uow: UnitOfWork, key: domain.LedgerKeys):
        self._uow = uow
        self._key = key
        self._head: LedgerEntry | None = None
        self._read = False
        self._rows: list[dict] = []

    def append(self, entry: LedgerEntry) -> LedgerEntry:
        if not self._read:
            last = self._uow.session.execute(_CHAIN_HEAD).first()
            self._head, self._read = (ledger_entry_from(last) if last else None), True
        sealed = entry.chained_after(self._head, self._key)
        self._head = sealed
        self._rows.append(ledger_row(sealed))
        return sealed

    def write(self) -> None:
        if self._rows:
            insert_rows(self._uow.session.connection(), ledger, self._rows)
            self._rows = []


def _append(uow: UnitOfWork, key: domain.LedgerKeys, entry: LedgerEntry) -> LedgerEntry:
    chain = _Chain(uow, key)
    sealed = chain.append(entry)
    chain.write()
    return sealed


def _received_under(uow: UnitOfWork, consent_id: str) -> list[str]:
    """The organisations that received data resting on this consent."""
    rows = uow.session.execute(select(ledger.c.to_org).where(
        ledger.c.kind == "disclosure", ledger.c.to_org.is_not(None),
        ledger.c.consent_refs.contains(f'"{consent_id}"')).distinct()).all()
    return sorted(row.to_org for row in rows)


# --- the ledger's anchors and verification -------------------------------------------

def anchor_ledger(uow: UnitOfWork, now: datetime) -> dict | None:
    """Announce the chain head (seq, hash) through the outbox, for every agency link to keep."""
    with uow:
        last = uow.session.execute(select(ledger.c.seq, ledger.c.hash).order_by(ledger.c.seq.desc()).limit(1)).first()
        if last is None:
            return None
        uow.emit(LedgerAnchored(seq=last.seq, hash=last.hash, at=now))
        uow.commit()
    return {"seq": last.seq, "hash": last.hash}


def verify_ledger(uow: UnitOfWork, key: domain.LedgerKeys, anchors: list[domain.Anchor]) -> dict:
    """Recompute the whole chain under the ledger keys and compare it with the anchors held elsewhere."""
    with uow:  # streamed in pages: the ledger is never all in memory
        rows = uow.session.execute(select(ledger).order_by(ledger.c.seq).execution_options(yield_per=1000))
        result = domain.verify_chain((ledger_entry_from(row) for row in rows), key, anchors)
    metrics.LEDGER_INTACT.set(1 if result.intact else 0)
    metrics.LEDGER_ENTRIES_VERIFIED.set(result.entries)
    metrics.LEDGER_VERIFIED_AT.set_to_current_time()
    view = {"intact": result.intact, "entries": result.entries, "head": result.head,
            "unkeyed_entries": result.unkeyed, "anchors_checked": result.anchors_checked}
    if result.first_broken is not None:
        view["first_broken"] = result.first_broken
    return view
