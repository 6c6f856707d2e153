"""The transitions service's own tables (SQLAlchemy Core), plus outbox/inbox."""
from __future__ import annotations

from sqlalchemy import JSON, Column, Index, Integer, MetaData, String, Table

from pont_shared.messaging.db import UtcDateTime, define_messaging_tables

metadata = MetaData()
tables = define_messaging_tables(metadata)

transitions = Table(
    "transitions", metadata,
    Column("id", String(36), primary_key=True),
    Column("child_ref", String(64), nullable=False),
    Column("from_school", String(80), nullable=False),
    Column("to_school", String(80), nullable=False),
    Column("prepared_by", String(120), nullable=False),
    Column("prepared_at", UtcDateTime(), nullable=False),
    Column("status", String(20), nullable=False),
    Column("sections", JSON, nullable=False),        # personal data: this service's own store only
    Column("included", JSON, nullable=False),
    Column("withheld", JSON, nullable=False),
    Column("disclosure_ids", JSON, nullable=False),
    Column("section_basis", JSON),                   # section → consent ids it was disclosed on
    Column("sent_at", UtcDateTime()),
    Column("due_at", UtcDateTime()),
    Column("acknowledged_at", UtcDateTime()),
    Column("acknowledged_by", String(120)),
    Column("overdue_at", UtcDateTime()),
    # a send committed but not yet recorded as sent: when, and by whom (sub, org, roles) consent is asked
    Column("send_requested_at", UtcDateTime()),
    Column("send_requested_by", JSON),
)
Index("ix_transitions_to_school_status", transitions.c.to_school, transitions.c.status)
Index("ix_transitions_from_school", transitions.c.from_school)
Index("ix_transitions_status_due", transitions.c.status, transitions.c.due_at)
Index("ix_transitions_send_requested_at", transitions.c.send_requested_at)

ctf_sequences = Table(
    "ctf_sequences", metadata,
    Column("from_school", String(80), primary_key=True),
    Column("to_school", String(80), primary_key=True),
    Column("last", Integer, nullable=False),
)

# consents withdrawn or expired for a child: a record sent while the withdrawal was being handled
# (the sharing decision came first, the send committed after) is restricted as it is saved
ended_consents = Table(
    "ended_consents", metadata,
    Column("consent_id", String(120), primary_key=True),
    Column("child_ref", String(64), nullable=False, index=True),
    Column("why", String(20), nullable=False),        # withdrawn | expired
    Column("action", String(20), nullable=False),     # restrict | erase
    Column("ended_at", UtcDateTime(), nullable=False),
)
