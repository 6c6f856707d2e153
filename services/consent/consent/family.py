"""Families: one function per command, like handlers.py.

A school invites a parent, carer or young person with a one-time code; the family member, signed
in, redeems it and is linked to that child. Through the link they see the consents about the
child (domain.FamilyLink says which), withdraw one (evidence "portal", the same withdrawal every
holder hears of), and see what was shared: the ledger's disclosures and withdrawals for the
child, except those a DSL exempted because telling the family could put the child at risk.
"""
from __future__ import annotations

import secrets
import uuid
from datetime import datetime, timedelta

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from pont_shared.auth import FAMILY_ROLE
from pont_shared.contract.caller import CallerClaims
from pont_shared.contract.errors import Conflict, Forbidden, Invalid, NotFound
from pont_shared.contract.rpc.consent import ConsentStatus
from pont_shared.contract.rpc.family import (
    ExemptionView,
    FamilyChild,
    InviteCreated,
    NewExemption,
    RecordInvite,
    Redeem,
    SharedEntry,
)
from pont_shared.identity import child_ref as derive_child_ref
from pont_shared.messaging.uow import UnitOfWork

from . import domain
from .domain import FamilyLink, LedgerEntry, RuleViolation
from .handlers import _append, _aware, _caller, _consent_view, _invalid, _iso, _lock_ledger, withdraw
from .orm import consent_from, consents, family_exemptions, family_invites, family_links, ledger, ledger_entry_from

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
           "relationship": data.relationship,
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
                "given_name": found.given_name, "relationship": found.relationship, "invite_id": found.id,
                "linked_at": now}
        try:
            uow.session.execute(insert(family_links).values(**link))
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
    who = _caller(caller)
    if "dsl" not in who.roles:
        raise Forbidden("only a designated safeguarding lead may keep a disclosure from a family")
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
        uow.commit()
    return view


def _family(caller: dict) -> CallerClaims:
    who = _caller(caller)
    if FAMILY_ROLE not in who.roles:
        raise Forbidden("these are a family's own pages")
    return who


def _links(uow: UnitOfWork, who: CallerClaims) -> list[FamilyLink]:
    with uow:
        rows = uow.session.execute(select(family_links.c.child_ref, family_links.c.relationship).where(
            family_links.c.school == who.org, family_links.c.member == who.sub)).all()
    return [FamilyLink(row.child_ref, row.relationship) for row in rows]


def _link(uow: UnitOfWork, child_ref: str, caller: dict) -> FamilyLink:
    for link in _links(uow, _family(caller)):
        if link.child_ref == str(child_ref):
            return link
    raise NotFound(NO_CHILD)


def _child(link) -> FamilyChild:
    return FamilyChild(child_ref=link["child_ref"], given_name=link["given_name"],
                       relationship=link["relationship"], decides_for_self=link["relationship"] == "self",
                       linked_at=_iso(link["linked_at"]))
