"""Referrals' own tables (SQLAlchemy Core), beside its outbox and inbox."""
from __future__ import annotations

from sqlalchemy import JSON, Column, ForeignKey, Index, Integer, MetaData, String, Table, Text

from pont_shared.messaging.db import UtcDateTime, define_messaging_tables

from .domain import OPEN_STATUSES

metadata = MetaData()
tables = define_messaging_tables(metadata)

referrals = Table(
    "referrals", metadata,
    Column("id", String(36), primary_key=True),
    Column("child_ref", String(64), nullable=False, index=True),
    Column("from_org", String(80), nullable=False, index=True),
    Column("to_org", String(80), nullable=False),
    Column("service", String(40), nullable=False),
    Column("urgency", String(20), nullable=False),
    Column("reason", Text, nullable=False),
    Column("details", Text, nullable=False),
    Column("child", JSON, nullable=False),
    Column("share", JSON, nullable=False),
    Column("information", JSON, nullable=False),
    Column("basis", String(30), nullable=False),
    Column("justification", Text, nullable=True),
    Column("raised_by", String(120), nullable=False),
    Column("raised_at", UtcDateTime(), nullable=False),
    Column("raised_by_roles", JSON, nullable=False),
    Column("status", String(20), nullable=False, index=True),
    Column("deadline", UtcDateTime(), nullable=True),
    Column("overdue_at", UtcDateTime(), nullable=True),
    Column("disclosure_id", String(64), nullable=True),
    Column("shared_categories", JSON, nullable=False),
)

_open = referrals.c.status.in_(OPEN_STATUSES)
# one open referral per referring school, child and service — enforced by the database under concurrency
Index("ux_referrals_open", referrals.c.from_org, referrals.c.child_ref, referrals.c.service, unique=True,
      postgresql_where=_open, sqlite_where=_open)

referral_steps = Table(
    "referral_steps", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("referral_id", String(36), ForeignKey("referrals.id"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("status", String(20), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("by", String(120), nullable=False),
    Column("code", String(60), nullable=True),
)
# one step per place in a referral's chronology: two answers recorded at once cannot both add the first
Index("ux_referral_steps_seq", referral_steps.c.referral_id, referral_steps.c.seq, unique=True)
