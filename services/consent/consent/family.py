"""Families: one function per command, like handlers.py.

A school invites a parent, carer or young person with a one-time code; the family member, signed
in, redeems it and is linked to that child. Through the link they see the consents about the
child (domain.FamilyLink says which), withdraw one (evidence "portal", the same withdrawal every
holder hears of), and see what was shared: the ledger's disclosures and withdrawals for the
child, except those a DSL exempted because telling the family could put the child at risk.
"""
from __future__ import annotations

import secrets
import smtplib
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from pont_shared.auth import FAMILY_ROLE
from pont_shared.contract.caller import CallerClaims
from pont_shared.contract.envelope import Envelope
from pont_shared.contract.errors import Conflict, Forbidden, Invalid, NotFound
from pont_shared.contract.events import (
    AppointmentBooked,
    ConsentRequested,
    FamilyExemptionChanged,
    FamilyLinked,
    ReferralHeld,
    SessionScheduled,
    TransitionSent,
)
from pont_shared.contract.rpc.consent import ConsentRecorded, ConsentStatus
from pont_shared.contract.rpc.family import (
    ConsentRequestView,
    ExemptionReview,
    ExemptionView,
    FamilyChild,
    GiveConsent,
    InviteCreated,
    NewExemption,
    Preferences,
    PreferencesView,
    RecordConsentRequest,
    RecordInvite,
    Redeem,
    SharedEntry,
)
from pont_shared.identity import child_ref as derive_child_ref
from pont_shared.messaging.uow import UnitOfWork

from . import domain, notices
from .domain import FamilyLink, LedgerEntry, RuleViolation
from .handlers import (
    _append,
    _aware,
    _caller,
    _consent_view,
    _invalid,
    _iso,
    _lock_ledger,
    insert_consent,
    withdraw,
)
from .orm import (
    consent_from,
    consent_requests,
    consents,
    family_exemptions,
    family_invites,
    family_links,
    family_preferences,
    ledger,
    ledger_entry_from,
    session_services,
)
from .orm import notices as notices_table

NO_INVITE = "no such invitation for your school, or it has been used or has expired"
NO_CHILD = "no child of yours by that reference"


def invite(uow: UnitOfWork, data: RecordInvite, caller: dict, now: datetime, child_ref_secret: str) -> InviteCreated:
    who = _caller(caller)
    if not who.org.startswith("school:"):
        raise Forbidden("only a school invites its pupils' families")
    if data.relationship == "self":  # a young person's own account: they decide for themselves, if they may
        try:
            domain.young_person_decides(data.child.date_of_birth, data.competence_assessed, now.date())
        except RuleViolation as exc:
            raise _invalid(exc) from None
    code = domain.new_invite_code(secrets.token_bytes(16))
    row = {"id": str(uuid.uuid4()), "code_hash": domain.invite_code_hash(code), "school": who.org,
           "child_ref": derive_child_ref(data.child.upn, child_ref_secret), "given_name": data.given_name,
           "relationship": data.relationship, "date_of_birth": data.child.date_of_birth,
           "competence_assessed": data.competence_assessed,
           "invited_by": who.sub, "created_at": now, "expires_at": now + timedelta(days=domain.INVITE_DAYS)}
    with uow:
        uow.session.execute(insert(family_invites).values(**row))
        uow.commit()
    return InviteCreated(id=row["id"], child_ref=row["child_ref"], relationship=data.relationship, code=code,
                         expires_at=_iso(row["expires_at"]))


def redeem(uow: UnitOfWork, data: Redeem, caller: dict, now: datetime) -> FamilyChild:
    """Link the signed-in family member to the invitation's child; the code is spent."""
    who = _family(caller)
    with uow:
        found = uow.session.execute(select(family_invites).where(
            family_invites.c.code_hash == domain.invite_code_hash(data.code),
            family_invites.c.school == who.org)).first()
        if found is None or found.redeemed_at is not None or _aware(found.expires_at) <= now:
            raise NotFound(NO_INVITE)
        spent = uow.session.execute(update(family_invites).where(
            family_invites.c.id == found.id, family_invites.c.redeemed_at.is_(None)).values(
            redeemed_at=now, redeemed_by=who.sub))
        if spent.rowcount != 1:
            raise NotFound(NO_INVITE)
        link = {"id": str(uuid.uuid4()), "school": who.org, "member": who.sub, "child_ref": found.child_ref,
                "given_name": found.given_name, "relationship": found.relationship,
                "date_of_birth": found.date_of_birth, "competence_assessed": found.competence_assessed,
                "invite_id": found.id, "linked_at": now}
        try:
            uow.session.execute(insert(family_links).values(**link))
            uow.emit(FamilyLinked(child_ref=found.child_ref, school=who.org, relationship=found.relationship),
                     subject=found.child_ref)
            uow.commit()
        except IntegrityError:
            raise Conflict("you are already linked to this child") from None
    return _child(link)


def children(uow: UnitOfWork, caller: dict) -> list[FamilyChild]:
    who = _family(caller)
    with uow:
        rows = uow.session.execute(select(family_links).where(
            family_links.c.school == who.org, family_links.c.member == who.sub)
            .order_by(family_links.c.linked_at)).all()
    return [_child(row._mapping) for row in rows]


def child_consents(uow: UnitOfWork, child_ref: str, caller: dict, now: datetime) -> list[dict]:
    link = _link(uow, child_ref, caller)
    with uow:
        rows = uow.session.execute(select(consents).where(consents.c.child_ref == link.child_ref)
                                   .order_by(consents.c.recorded_at)).all()
    return [_consent_view(consent, now) for consent in map(consent_from, rows) if link.sees(consent)]


def withdraw_consent(uow: UnitOfWork, consent_id: str, reason: str | None, caller: dict, now: datetime,
                     ledger_key: domain.LedgerKeys) -> ConsentStatus:
    """The family withdraws a consent about their child: recorded with evidence "portal", and every
    holder of a copy is told to restrict it, as when staff withdraw it."""
    who = _family(caller)
    links = _links(uow, who)
    return withdraw(uow, consent_id, who, lambda consent: any(link.sees(consent) for link in links),
                    reason or "withdrawn by the family", now, ledger_key, evidence="portal")


def shared(uow: UnitOfWork, child_ref: str, caller: dict) -> list[SharedEntry]:
    """What was shared about the child and what consent was withdrawn, oldest first, less what a DSL exempted."""
    link = _link(uow, child_ref, caller)
    with uow:
        entries = [ledger_entry_from(row) for row in uow.session.execute(
            select(ledger).where(ledger.c.child_ref == link.child_ref).order_by(ledger.c.seq))]
        exempted = set(uow.session.scalars(select(family_exemptions.c.disclosure_id).where(
            family_exemptions.c.child_ref == link.child_ref)))
        own = set(uow.session.scalars(select(consents.c.id).where(
            consents.c.child_ref == link.child_ref, consents.c.relationship == "self")))
    return [SharedEntry(id=e.id, kind=e.kind, at=_iso(e.at), from_org=e.from_org, to_org=e.to_org,
                        purpose=e.purpose, categories=list(e.categories), basis=e.basis)
            for e in entries if e.id not in exempted and link.sees_entry(e, own)]


def exempt(uow: UnitOfWork, disclosure_id: str, data: NewExemption, caller: dict, now: datetime,
           ledger_key: domain.LedgerKeys) -> ExemptionView:
    """A DSL of an organisation that made or received the disclosure keeps it from the family's view;
    the marking is itself a ledger entry (basis safeguarding, the reason its justification)."""
    who = _dsl(caller)
    problem = domain.exemption_review_problem(data.review_on, now.date())
    if problem:
        raise Invalid(f"review_on: {problem}", [{"field": "review_on", "message": problem}])
    with uow:
        _lock_ledger(uow)
        row = uow.session.execute(select(ledger).where(ledger.c.id == str(disclosure_id),
                                                       ledger.c.kind == "disclosure")).first()
        entry = ledger_entry_from(row) if row else None
        if entry is None or who.org not in (entry.from_org, entry.to_org):
            raise NotFound("no such disclosure your organisation made or received")
        view = ExemptionView(id=str(uuid.uuid4()), disclosure_id=entry.id, child_ref=entry.child_ref,
                             reason=data.reason, review_on=data.review_on, marked_by=who.sub, marked_at=_iso(now))
        try:
            uow.session.execute(insert(family_exemptions).values(
                id=view.id, disclosure_id=entry.id, child_ref=entry.child_ref, reason=data.reason,
                review_on=data.review_on, marked_by=who.sub, marked_by_org=who.org, marked_at=now))
        except IntegrityError:
            raise Conflict("this disclosure is already kept from the family") from None
        _append(uow, ledger_key, LedgerEntry(
            seq=0, id=str(uuid.uuid4()), kind="family_exemption", at=now, child_ref=entry.child_ref,
            from_org=who.org, to_org=None, purpose=entry.purpose, categories=entry.categories,
            basis="safeguarding", basis_ref=entry.id, by=who.sub, flagged_for_review=True,
            justification=data.reason))
        uow.emit(FamilyExemptionChanged(disclosure_id=entry.id, child_ref=entry.child_ref, org=who.org,
                                        decision="marked", review_on=data.review_on), subject=entry.child_ref)
        uow.commit()
    return view


def exemptions(uow: UnitOfWork, caller: dict, now: datetime) -> list[ExemptionView]:
    """The exemptions the DSL's organisation marked, the soonest review first; `due` once its date has come."""
    who = _dsl(caller)
    with uow:
        rows = uow.session.execute(select(family_exemptions).where(family_exemptions.c.marked_by_org == who.org)
                                   .order_by(family_exemptions.c.review_on)).all()
    return [_exemption_view(row._mapping, now) for row in rows]


def review_exemption(uow: UnitOfWork, exemption_id: str, data: ExemptionReview, caller: dict, now: datetime,
                     ledger_key: domain.LedgerKeys) -> ExemptionView | None:
    """A DSL of the organisation that marked it keeps it until a new date, or lifts it (the family then sees
    the disclosure: None is answered); the decision and its reason go in the ledger."""
    who = _dsl(caller)
    if data.decision == "keep":
        problem = "is needed to keep it" if data.review_on is None else \
            domain.exemption_review_problem(data.review_on, now.date())
        if problem:
            raise Invalid(f"review_on: {problem}", [{"field": "review_on", "message": problem}])
    with uow:
        _lock_ledger(uow)
        row = uow.session.execute(select(family_exemptions).where(
            family_exemptions.c.id == str(exemption_id), family_exemptions.c.marked_by_org == who.org)).first()
        if row is None:
            raise NotFound("no such exemption your organisation marked")
        disclosure = ledger_entry_from(uow.session.execute(select(ledger).where(
            ledger.c.id == row.disclosure_id)).one())
        if data.decision == "keep":
            uow.session.execute(update(family_exemptions).where(family_exemptions.c.id == row.id).values(
                review_on=data.review_on, reason=data.reason))
        else:
            uow.session.execute(delete(family_exemptions).where(family_exemptions.c.id == row.id))
        _append(uow, ledger_key, LedgerEntry(
            seq=0, id=str(uuid.uuid4()), kind="exemption_kept" if data.decision == "keep" else "exemption_lifted",
            at=now, child_ref=row.child_ref, from_org=who.org, to_org=None, purpose=disclosure.purpose,
            categories=disclosure.categories, basis="safeguarding", basis_ref=row.disclosure_id, by=who.sub,
            justification=data.reason))
        uow.emit(FamilyExemptionChanged(
            disclosure_id=row.disclosure_id, child_ref=row.child_ref, org=who.org,
            decision="kept" if data.decision == "keep" else "lifted", review_on=data.review_on
            if data.decision == "keep" else None), subject=row.child_ref)
        uow.commit()
    if data.decision == "lift":
        return None
    return _exemption_view({**row._mapping, "review_on": data.review_on, "reason": data.reason}, now)


def _exemption_view(row, now: datetime) -> ExemptionView:
    return ExemptionView(id=row["id"], disclosure_id=row["disclosure_id"], child_ref=row["child_ref"],
                         reason=row["reason"], review_on=row["review_on"], marked_by=row["marked_by"],
                         marked_at=_iso(row["marked_at"]), due=row["review_on"] <= now.date())


def _dsl(caller: dict) -> CallerClaims:
    who = _caller(caller)
    if "dsl" not in who.roles:
        raise Forbidden("only a designated safeguarding lead may keep a disclosure from a family")
    return who


# --- how a family is told ----------------------------------------------------------

def preferences(uow: UnitOfWork, caller: dict) -> PreferencesView:
    """The member's choices; none made yet: not told (they have given no address), in English."""
    who = _family(caller)
    with uow:
        row = uow.session.execute(select(family_preferences).where(
            family_preferences.c.school == who.org, family_preferences.c.member == who.sub)).first()
    if row is None:
        return PreferencesView(channel="none", language="en")
    return PreferencesView(channel=row.channel, email=row.email, language=row.language,
                           updated_at=_iso(row.updated_at))


def set_preferences(uow: UnitOfWork, data: Preferences, caller: dict, now: datetime) -> PreferencesView:
    who = _family(caller)
    values = {"channel": data.channel, "email": data.email if data.channel == "email" else None,
              "language": data.language, "updated_at": now}
    with uow:
        changed = uow.session.execute(update(family_preferences).where(
            family_preferences.c.school == who.org, family_preferences.c.member == who.sub).values(**values))
        if changed.rowcount == 0:
            uow.session.execute(insert(family_preferences).values(school=who.org, member=who.sub, **values))
        uow.commit()
    return PreferencesView(channel=values["channel"], email=values["email"], language=data.language,
                           updated_at=_iso(now))


def on_session_scheduled(uow: UnitOfWork, event: SessionScheduled) -> None:
    """Keep which service a session offers, to name it in a notice the family's consent allows."""
    with uow:
        known = uow.session.execute(select(session_services.c.session_id).where(
            session_services.c.session_id == event.session_id)).first()
        if known is None:
            uow.session.execute(insert(session_services).values(
                session_id=event.session_id, provider_org=event.provider_org, service=event.service))
        uow.commit()


def on_appointment_booked(uow: UnitOfWork, event: AppointmentBooked, now: datetime) -> int:
    """Tell each family member linked to the child who asked to be told: day, time and room; the service
    only when a consent that member may see lets it be shared with the provider for appointments."""
    with uow:
        offered = uow.session.execute(select(session_services).where(
            session_services.c.session_id == event.session_id)).first()
        about = [consent_from(row) for row in uow.session.execute(
            select(consents).where(consents.c.child_ref == event.child_ref))]

        def notice(link: FamilyLink, language: str, name: str) -> notices.Notice:
            named = offered is not None and offered.provider_org == event.provider_org and any(
                link.sees(c) and c.in_force(now.date()) and event.provider_org in c.recipients
                and "appointment" in c.purposes for c in about)
            return notices.appointment(language, name, event.starts_at, event.ends_at, event.room,
                                       offered.service if named else None)
        told = _tell(uow, event.child_ref, "appointment_booked", event.appointment_id, notice, now)
        uow.commit()
    return told


def on_transitions_sent(uow: UnitOfWork, envelopes: list[Envelope], now: datetime) -> int:
    """Transition records sent, a batch of them in one transaction: the families linked to those
    children are told (most children of a year group have none, and are passed over in one look)."""
    told = 0
    with uow:
        sent = [envelope.payload(TransitionSent) for envelope in uow.fresh(envelopes)]
        linked = set(uow.session.execute(select(family_links.c.child_ref).where(
            family_links.c.child_ref.in_({event.child_ref for event in sent}))).scalars())
        for event in sent:
            if event.child_ref in linked:
                told += _tell(uow, event.child_ref, "transition_sent", event.transition_id,
                              lambda _link, language, name, school=event.to_school:
                              notices.transition_sent(language, name, school), now)
        uow.commit()
    return told


def tell_of_consents_ending(uow: UnitOfWork, now: datetime) -> int:
    """Tell the family, once, of each consent in force that ends within `domain.ENDING_NOTICE_DAYS`."""
    today, told = now.date(), 0
    with uow:
        ending = [consent_from(row) for row in uow.session.execute(select(consents).where(
            consents.c.status == domain.ACTIVE, consents.c.expires_on >= today,
            consents.c.expires_on <= today + timedelta(days=domain.ENDING_NOTICE_DAYS)))]
        for consent in ending:
            told += _tell(uow, consent.child_ref, "consent_ending", consent.id,
                          lambda link, language, name, c=consent: notices.consent_ending(
                              language, name, c.recipients, c.expires_on) if link.sees(c) else None, now)
        uow.commit()
    return told


def _tell(uow: UnitOfWork, child_ref: str, kind: str, about: str,
          compose: Callable[[FamilyLink, str, str], notices.Notice | None], now: datetime) -> int:
    """Queue a notice `compose(link, language, child's name)` for each family member linked to the child who
    chose to be told by email, once per member, kind and `about`; `compose` may answer None (not theirs)."""
    queued = 0
    links = uow.session.execute(select(family_links).where(family_links.c.child_ref == child_ref)).all()
    for link in links:
        choice = uow.session.execute(select(family_preferences).where(
            family_preferences.c.school == link.school, family_preferences.c.member == link.member)).first()
        if choice is None or choice.channel != "email" or not choice.email:
            continue
        already = uow.session.execute(select(notices_table.c.id).where(
            notices_table.c.member == link.member, notices_table.c.kind == kind,
            notices_table.c.about == about)).first()
        notice = None if already else compose(FamilyLink(link.child_ref, link.relationship), choice.language,
                                              link.given_name)
        if notice is None:
            continue
        uow.session.execute(insert(notices_table).values(
            id=str(uuid.uuid4()), school=link.school, member=link.member, child_ref=link.child_ref, kind=kind,
            about=about, language=choice.language, recipient=choice.email, subject=notice.subject,
            body=notice.body, created_at=now))
        queued += 1
    return queued


# --- consent asked of the family ---------------------------------------------------------

def request_consent(uow: UnitOfWork, data: RecordConsentRequest, caller: dict, now: datetime,
                    child_ref_secret: str) -> ConsentRequestView:
    """A practitioner asks the family; each linked member who chose to be told is told."""
    who = _caller(caller)
    view = ConsentRequestView(
        id=str(uuid.uuid4()), child_ref=derive_child_ref(data.child.upn, child_ref_secret),
        recipients=list(dict.fromkeys(data.recipients)), purposes=list(dict.fromkeys(data.purposes)),
        categories=list(dict.fromkeys(data.categories)), asked_by_org=who.org, asked_at=_iso(now), status="open")
    with uow:
        _ask(uow, view, who.sub, now)
        uow.commit()
    return view


def on_referral_held(uow: UnitOfWork, event: ReferralHeld, now: datetime) -> None:
    """A referral waits for consent: the family is asked for exactly what it lacks (once per referral)."""
    with uow:
        known = uow.session.execute(select(consent_requests.c.id).where(
            consent_requests.c.referral_id == event.referral_id)).first()
        if known is None:
            _ask(uow, ConsentRequestView(
                id=str(uuid.uuid4()), child_ref=event.child_ref, recipients=[event.to_org], purposes=["referral"],
                categories=list(dict.fromkeys(event.missing_categories)), asked_by_org="",
                referral_id=event.referral_id, asked_at=_iso(now), status="open"), "referrals", now)
        uow.commit()


def _ask(uow: UnitOfWork, view: ConsentRequestView, asked_by: str, now: datetime) -> None:
    uow.session.execute(insert(consent_requests).values(
        id=view.id, child_ref=view.child_ref, recipients=view.recipients, purposes=view.purposes,
        categories=view.categories, asked_by=asked_by, asked_by_org=view.asked_by_org,
        referral_id=view.referral_id, asked_at=now, status="open"))
    uow.emit(ConsentRequested(request_id=view.id, child_ref=view.child_ref, recipients=view.recipients,
                              purposes=view.purposes, categories=view.categories, referral_id=view.referral_id),
             subject=view.child_ref)
    _tell(uow, view.child_ref, "consent_requested", view.id,
          lambda _link, language, name: notices.consent_requested(language, name, view.recipients, view.categories),
          now)


def open_requests(uow: UnitOfWork, child_ref: str, caller: dict, now: datetime) -> list[ConsentRequestView]:
    """The requests still open about the child, less those a consent in force now covers (recorded by staff,
    say, since they were asked)."""
    link = _link(uow, child_ref, caller)
    with uow:
        rows = uow.session.execute(select(consent_requests).where(
            consent_requests.c.child_ref == link.child_ref, consent_requests.c.status == "open")
            .order_by(consent_requests.c.asked_at)).all()
        in_force = [c for c in map(consent_from, uow.session.execute(
            select(consents).where(consents.c.child_ref == link.child_ref))) if c.in_force(now.date())]

    def covered(row) -> bool:
        return all(any(c.scope_covers(org, purpose, category) for c in in_force)
                   for org in row.recipients for purpose in row.purposes for category in row.categories)
    return [_request_view(row) for row in rows if not covered(row)]


def give(uow: UnitOfWork, request_id: str, data: GiveConsent, caller: dict, now: datetime) -> ConsentRecorded:
    """The family member gives the consent asked for, as who they are to the child (evidence "portal"); a
    referral held for it is released by the consent's event."""
    who = _family(caller)
    links = {link.child_ref: link for link in _links(uow, who)}
    with uow:
        asked = _open_request(uow, request_id, set(links))
        try:
            consent = links[asked.child_ref].give(
                id=str(uuid.uuid4()), recipients=asked.recipients, purposes=asked.purposes,
                categories=asked.categories, expires_on=data.expires_on, school=who.org, member=who.sub, now=now)
        except RuleViolation as exc:
            raise _invalid(exc) from None
        answered = uow.session.execute(update(consent_requests).where(
            consent_requests.c.id == asked.id, consent_requests.c.status == "open").values(
            status="given", answered_by=who.sub, answered_at=now, consent_id=consent.id))
        if answered.rowcount != 1:
            raise Conflict("this request was answered already")
        insert_consent(uow, consent, f"{who.sub} (family portal)")
        uow.commit()
    return ConsentRecorded(id=consent.id, child_ref=consent.child_ref, status=consent.status)


def decline(uow: UnitOfWork, request_id: str, caller: dict, now: datetime) -> ConsentRequestView:
    who = _family(caller)
    children = {link.child_ref for link in _links(uow, who)}
    with uow:
        asked = _open_request(uow, request_id, children)
        uow.session.execute(update(consent_requests).where(consent_requests.c.id == asked.id).values(
            status="declined", answered_by=who.sub, answered_at=now))
        uow.commit()
    return _request_view(asked).model_copy(update={"status": "declined"})


def _open_request(uow: UnitOfWork, request_id: str, children: set[str]):
    """The request, if it is about one of `children` (else not found) and still open (else a conflict)."""
    asked = uow.session.execute(select(consent_requests).where(consent_requests.c.id == str(request_id))).first()
    if asked is None or asked.child_ref not in children:
        raise NotFound("no such request for consent about a child of yours")
    if asked.status != "open":
        raise Conflict("this request was answered already")
    return asked


def _request_view(row) -> ConsentRequestView:
    return ConsentRequestView(id=row.id, child_ref=row.child_ref, recipients=list(row.recipients),
                              purposes=list(row.purposes), categories=list(row.categories),
                              asked_by_org=row.asked_by_org, referral_id=row.referral_id, asked_at=_iso(row.asked_at),
                              status=row.status)


def send_notices(uow: UnitOfWork, post: Callable[[str, str, str], None], now: datetime, batch: int = 50) -> int:
    """Send what is queued through `post(recipient, subject, body)`; a sent notice keeps no content.
    A failure is counted and tried again next time, up to `domain.NOTICE_ATTEMPTS`."""
    with uow:
        waiting = uow.session.execute(select(notices_table).where(
            notices_table.c.sent_at.is_(None), notices_table.c.attempts < domain.NOTICE_ATTEMPTS)
            .order_by(notices_table.c.created_at).limit(batch)).all()
    sent, failed = [], {}
    for notice in waiting:
        try:
            post(notice.recipient, notice.subject, notice.body)
            sent.append(notice.id)
        except (OSError, smtplib.SMTPException) as exc:
            failed[notice.id] = type(exc).__name__
    with uow:
        if sent:
            uow.session.execute(update(notices_table).where(notices_table.c.id.in_(sent)).values(
                sent_at=now, recipient=None, subject=None, body=None, attempts=notices_table.c.attempts + 1))
        for notice_id, error in failed.items():
            uow.session.execute(update(notices_table).where(notices_table.c.id == notice_id).values(
                attempts=notices_table.c.attempts + 1, last_error=error))
        uow.commit()
    return len(sent)


def _family(caller: dict) -> CallerClaims:
    who = _caller(caller)
    if FAMILY_ROLE not in who.roles:
        raise Forbidden("these are a family's own pages")
    return who


def _links(uow: UnitOfWork, who: CallerClaims) -> list[FamilyLink]:
    with uow:
        rows = uow.session.execute(select(family_links).where(
            family_links.c.school == who.org, family_links.c.member == who.sub)).all()
    return [FamilyLink(row.child_ref, row.relationship, row.date_of_birth, row.competence_assessed) for row in rows]


def _link(uow: UnitOfWork, child_ref: str, caller: dict) -> FamilyLink:
    for link in _links(uow, _family(caller)):
        if link.child_ref == str(child_ref):
            return link
    raise NotFound(NO_CHILD)


def _child(link) -> FamilyChild:
    return FamilyChild(child_ref=link["child_ref"], given_name=link["given_name"],
                       relationship=link["relationship"], decides_for_self=link["relationship"] == "self",
                       linked_at=_iso(link["linked_at"]))
