"""The agency's own tables (SQLAlchemy Core), beside its outbox and inbox."""
from __future__ import annotations

from sqlalchemy import JSON, Column, Index, Integer, MetaData, String, Table, Text, UniqueConstraint

from pont_shared.messaging.db import UtcDateTime, define_messaging_tables

metadata = MetaData()
tables = define_messaging_tables(metadata)

disclosures = Table(
    "disclosures", metadata,
    Column("disclosure_id", String(64), primary_key=True),
    Column("subject_kind", String(30), nullable=False),
    Column("subject_id", String(64), nullable=False),
    Column("child_ref", String(64), nullable=False, index=True),
    Column("from_org", String(80), nullable=False),
    Column("purpose", String(30), nullable=False),
    Column("basis", String(30), nullable=False),
    Column("basis_ref", String(120), nullable=False),
    Column("content", JSON, nullable=True),
    Column("received_at", UtcDateTime(), nullable=False),
    Column("status", String(20), nullable=False),
    Column("restricted_at", UtcDateTime(), nullable=True),
    Column("restriction", String(20), nullable=True),
    Column("decided_by", String(120), nullable=True),
    Column("decided_at", UtcDateTime(), nullable=True),
    Column("reason_code", String(60), nullable=True),
    Column("note", Text, nullable=True),  # the agency's own free text: never leaves this database
    Column("history", JSON, nullable=False),
)
Index("ix_disclosures_subject", disclosures.c.subject_kind, disclosures.c.subject_id)

appointments = Table(
    "pupil_appointments", metadata,
    Column("appointment_id", String(64), primary_key=True),
    Column("child_ref", String(64), nullable=False, index=True),
    Column("room", String(120), nullable=False),
    Column("provider_org", String(80), nullable=False),
    Column("starts_at", UtcDateTime(), nullable=False),
    Column("ends_at", UtcDateTime(), nullable=False),
    Column("status", String(20), nullable=False),
)

dsl_reviews = Table(
    "dsl_reviews", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(40), nullable=False),
    Column("appointment_id", String(64), nullable=False, unique=True),
    Column("child_ref", String(64), nullable=False),
    Column("provider_org", String(80), nullable=False),
    Column("starts_at", UtcDateTime(), nullable=False),
    Column("raised_at", UtcDateTime(), nullable=False),
    Column("status", String(20), nullable=False),
)

# consents withdrawn that named this agency: a copy that rests on one is restricted on arrival too,
# since a disclosure can be handled after the withdrawal (they come from different services' outboxes)
withdrawn_consents = Table(
    "withdrawn_consents", metadata,
    Column("consent_id", String(120), primary_key=True),
    Column("child_ref", String(64), nullable=False, index=True),
    Column("action", String(20), nullable=False),
    Column("withdrawn_at", UtcDateTime(), nullable=False),
)

# Common Transfer Files a school imported into its own store: per pupil, only what the file carried
imported_transfers = Table(
    "imported_transfers", metadata,
    Column("id", String(36), primary_key=True),
    Column("child_ref", String(64), nullable=False, index=True),
    Column("source_file", String(80), nullable=False),   # sha256 of the file: the same file imports once
    Column("from_school", String(80), nullable=False),
    Column("to_school", String(80), nullable=False),
    Column("content", JSON, nullable=False),              # identifiers, attendance, aln as the CTF carried them
    Column("imported_at", UtcDateTime(), nullable=False),
    Column("imported_by", String(120), nullable=False),
    UniqueConstraint("child_ref", "source_file", name="uq_imported_transfers_pupil_file"),
)

# Heads of the consent ledger's chain as announced (LedgerAnchored): kept here, outside consent's
# database, so that consent's verification can compare its chain with them
ledger_anchors = Table(
    "ledger_anchors", metadata,
    Column("ledger", String(120), primary_key=True),  # the announcing service (envelope source)
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("hash", String(64), nullable=False),
    Column("received_at", UtcDateTime(), nullable=False),
)
