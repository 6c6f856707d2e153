"""The consent service's tables (SQLAlchemy Core) and the mapping to and from the domain."""
from __future__ import annotations

import json

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from pont_shared.messaging.db import UtcDateTime, define_messaging_tables

from .domain import UNKEYED, Agreement, Consent, LedgerEntry

metadata = MetaData()
tables = define_messaging_tables(metadata)

agreements = Table(
    "agreements", metadata,
    Column("id", String(36), primary_key=True),
    Column("parties", JSON, nullable=False),
    Column("purposes", JSON, nullable=False),
    Column("categories", JSON, nullable=False),
    Column("valid_from", Date, nullable=False),
    Column("valid_to", Date, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("proposed_by_org", String(100), nullable=False, server_default=""),
    # [{org, by, at}]: one per party that approved; in force once every party has
    Column("approvals", JSON, nullable=False, server_default="[]"),
    Column("revoked_at", UtcDateTime(), nullable=True),
    Column("revoked_by", String(200), nullable=True),
    Column("revocation_reason", Text, nullable=True),
)

consents = Table(
    "consents", metadata,
    Column("id", String(36), primary_key=True),
    Column("child_ref", String(64), nullable=False, index=True),
    # who gave it: the relationship is the rule's input; the giver's name is evidence kept here only
    Column("given_by_name", String(200), nullable=False),
    Column("relationship", String(20), nullable=False),
    Column("competence_assessed", Boolean, nullable=False),
    Column("young_person_16_plus", Boolean, nullable=False),
    Column("recipients", JSON, nullable=False),
    Column("purposes", JSON, nullable=False),
    Column("categories", JSON, nullable=False),
    Column("evidence", String(20), nullable=False),
    Column("expires_on", Date, nullable=True),
    Column("status", String(20), nullable=False),
    Column("status_changed_at", UtcDateTime(), nullable=True),
    Column("withdrawal_reason", Text, nullable=True),
    Column("withdrawal_evidence", String(20), nullable=True),  # "portal": the family withdrew it themselves
    Column("recorded_by_org", String(100), nullable=False),
    Column("recorded_by", String(200), nullable=False),
    Column("recorded_at", UtcDateTime(), nullable=False),
)
Index("ix_consents_status_expires", consents.c.status, consents.c.expires_on)

# A school's invitation to a family member: only the code's hash is kept; used once, within its days.
family_invites = Table(
    "family_invites", metadata,
    Column("id", String(36), primary_key=True),
    Column("code_hash", String(64), nullable=False, unique=True),
    Column("school", String(100), nullable=False),
    Column("child_ref", String(64), nullable=False),
    Column("given_name", String(200), nullable=False),
    Column("relationship", String(20), nullable=False),
    # a young person's own consent depends on their age, or on the school's assessment of them
    Column("date_of_birth", Date, nullable=True),
    Column("competence_assessed", Boolean, nullable=False, server_default="false"),
    Column("invited_by", String(200), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("redeemed_at", UtcDateTime(), nullable=True),
    Column("redeemed_by", String(200), nullable=True),
)

# A family member (the identity provider's `sub`, of the school that invited them) linked to one child.
family_links = Table(
    "family_links", metadata,
    Column("id", String(36), primary_key=True),
    Column("school", String(100), nullable=False),
    Column("member", String(200), nullable=False),
    Column("child_ref", String(64), nullable=False),
    Column("given_name", String(200), nullable=False),
    Column("relationship", String(20), nullable=False),
    Column("date_of_birth", Date, nullable=True),
    Column("competence_assessed", Boolean, nullable=False, server_default="false"),
    Column("invite_id", String(36), nullable=False),
    Column("linked_at", UtcDateTime(), nullable=False),
    UniqueConstraint("school", "member", "child_ref", name="uq_family_links_member_child"),
)

# Disclosures a DSL keeps out of the family's view (the marking is also a ledger entry).
family_exemptions = Table(
    "family_exemptions", metadata,
    Column("id", String(36), primary_key=True),
    Column("disclosure_id", String(36), nullable=False, unique=True),
    Column("child_ref", String(64), nullable=False, index=True),
    Column("reason", Text, nullable=False),
    Column("review_on", Date, nullable=False),
    Column("marked_by", String(200), nullable=False),
    Column("marked_by_org", String(100), nullable=False),
    Column("marked_at", UtcDateTime(), nullable=False),
)

# How a family member wants to be told (channel "email" or "none"), and in which language.
family_preferences = Table(
    "family_preferences", metadata,
    Column("school", String(100), primary_key=True),
    Column("member", String(200), primary_key=True),
    Column("channel", String(10), nullable=False),
    Column("email", String(320), nullable=True),
    Column("language", String(2), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

# The service each co-located session offers (from bookings' SessionScheduled), to name it in a notice.
session_services = Table(
    "session_services", metadata,
    Column("session_id", String(36), primary_key=True),
    Column("provider_org", String(100), nullable=False),
    Column("service", String(40), nullable=False),
)

# Notices waiting to be sent, then kept without their content: to whom, what kind, when sent.
notices = Table(
    "notices", metadata,
    Column("id", String(36), primary_key=True),
    Column("school", String(100), nullable=False),
    Column("member", String(200), nullable=False),
    Column("child_ref", String(64), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("about", String(100), nullable=True),   # what it is about (a consent, a referral): told once each
    Column("language", String(2), nullable=False),
    Column("recipient", String(320), nullable=True),
    Column("subject", Text, nullable=True),
    Column("body", Text, nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("sent_at", UtcDateTime(), nullable=True, index=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", String(200), nullable=True),
)

# A consent the family is asked for: by a practitioner, or for a referral held for want of it.
consent_requests = Table(
    "consent_requests", metadata,
    Column("id", String(36), primary_key=True),
    Column("child_ref", String(64), nullable=False, index=True),
    Column("recipients", JSON, nullable=False),
    Column("purposes", JSON, nullable=False),
    Column("categories", JSON, nullable=False),
    Column("asked_by", String(200), nullable=False),
    Column("asked_by_org", String(100), nullable=False),
    Column("referral_id", String(36), nullable=True, unique=True),
    Column("asked_at", UtcDateTime(), nullable=False),
    Column("status", String(20), nullable=False),          # open, given, declined
    Column("answered_by", String(200), nullable=True),
    Column("answered_at", UtcDateTime(), nullable=True),
    Column("consent_id", String(36), nullable=True),
)

# Append-only: no code path updates or deletes a row; in PostgreSQL a trigger refuses it too.
ledger = Table(
    "disclosure_ledger", metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("id", String(36), nullable=False, unique=True),
    Column("kind", String(20), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("child_ref", String(64), nullable=False, index=True),
    Column("from_org", String(100), nullable=False),
    Column("to_org", String(100), nullable=True),
    Column("purpose", String(40), nullable=True),
    Column("categories", Text, nullable=False),
    Column("basis", String(40), nullable=False),
    Column("basis_ref", String(100), nullable=False, index=True),
    Column("by", String(200), nullable=False),
    Column("flagged_for_review", Boolean, nullable=False),
    Column("subject_kind", String(40), nullable=True),
    Column("subject_id", String(100), nullable=True),
    Column("justification", Text, nullable=True),
    Column("recipients", Text, nullable=False),
    Column("consent_refs", Text, nullable=False),
    # a second entry claiming the same predecessor would fork the chain: refused
    Column("prev_hash", String(64), nullable=False, unique=True),
    Column("hash", String(64), nullable=False, unique=True),
    # how `hash` was computed (domain.KEYED / UNKEYED); rows from before the ledger key are unkeyed
    Column("chain", String(20), nullable=False, server_default=UNKEYED),
)


def agreement_row(agreement: Agreement, created_at) -> dict:
    return {
        "id": agreement.id, "parties": sorted(agreement.parties), "purposes": sorted(agreement.purposes),
        "categories": sorted(agreement.categories), "valid_from": agreement.valid_from,
        "valid_to": agreement.valid_to, "created_by": agreement.created_by, "created_at": created_at,
        "proposed_by_org": agreement.proposed_by_org,
        "approvals": [{"org": org, "by": agreement.created_by, "at": created_at.isoformat()}
                      for org in sorted(agreement.approvals)],
    }


def agreement_from(row) -> Agreement:
    return Agreement(row.id, frozenset(row.parties), frozenset(row.purposes), frozenset(row.categories),
                     row.valid_from, row.valid_to, row.created_by, row.proposed_by_org,
                     frozenset(approval["org"] for approval in row.approvals), row.revoked_at)


def consent_row(consent: Consent) -> dict:
    return {
        "id": consent.id, "child_ref": consent.child_ref, "relationship": consent.relationship,
        "competence_assessed": consent.competence_assessed, "young_person_16_plus": consent.young_person_16_plus,
        "recipients": list(consent.recipients), "purposes": list(consent.purposes),
        "categories": list(consent.categories), "evidence": consent.evidence, "expires_on": consent.expires_on,
        "status": consent.status, "status_changed_at": consent.status_changed_at,
        "recorded_by_org": consent.recorded_by_org, "recorded_by": consent.recorded_by,
        "recorded_at": consent.recorded_at,
    }


def consent_from(row) -> Consent:
    return Consent(
        id=row.id, child_ref=row.child_ref, relationship=row.relationship,
        competence_assessed=row.competence_assessed, young_person_16_plus=row.young_person_16_plus,
        recipients=tuple(row.recipients), purposes=tuple(row.purposes), categories=tuple(row.categories),
        evidence=row.evidence, recorded_by_org=row.recorded_by_org, recorded_by=row.recorded_by,
        recorded_at=row.recorded_at, expires_on=row.expires_on, status=row.status,
        status_changed_at=row.status_changed_at,
    )


def ledger_row(entry: LedgerEntry) -> dict:
    return {
        "seq": entry.seq, "id": entry.id, "kind": entry.kind, "at": entry.at, "child_ref": entry.child_ref,
        "from_org": entry.from_org, "to_org": entry.to_org, "purpose": entry.purpose,
        "categories": json.dumps(list(entry.categories)), "basis": entry.basis, "basis_ref": entry.basis_ref,
        "by": entry.by, "flagged_for_review": entry.flagged_for_review, "subject_kind": entry.subject_kind,
        "subject_id": entry.subject_id, "justification": entry.justification,
        "recipients": json.dumps(list(entry.recipients)),
        "consent_refs": json.dumps(list(entry.consent_refs)), "prev_hash": entry.prev_hash, "hash": entry.hash,
        "chain": entry.chain,
    }


def ledger_entry_from(row) -> LedgerEntry:
    return LedgerEntry(
        seq=row.seq, id=row.id, kind=row.kind, at=row.at, child_ref=row.child_ref, from_org=row.from_org,
        to_org=row.to_org, purpose=row.purpose, categories=tuple(json.loads(row.categories)), basis=row.basis,
        basis_ref=row.basis_ref, by=row.by, flagged_for_review=row.flagged_for_review,
        subject_kind=row.subject_kind, subject_id=row.subject_id, justification=row.justification,
        recipients=tuple(json.loads(row.recipients)),
        consent_refs=tuple(json.loads(row.consent_refs)), prev_hash=row.prev_hash, hash=row.hash, chain=row.chain,
    )
