"""The bookings database: sites, rooms, sessions, slots, appointments (+ outbox/inbox).

The overlap rules also live in PostgreSQL as exclusion constraints (see the initial
migration): `sessions_room_no_overlap` and `appointments_child_no_overlap`. A slot's
capacity is guarded by `slots_within_capacity`.
"""
from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from pont_shared.messaging.db import UtcDateTime, define_messaging_tables

metadata = MetaData()
tables = define_messaging_tables(metadata)

sites = Table(
    "sites", metadata,
    Column("org", String(80), primary_key=True),
    Column("created_at", UtcDateTime(), nullable=False),
)

rooms = Table(
    "rooms", metadata,
    Column("id", String(36), primary_key=True),
    Column("site", String(80), ForeignKey("sites.org"), nullable=False),
    Column("name", String(120), nullable=False),
    UniqueConstraint("site", "name", name="rooms_site_name_key"),
)

sessions = Table(
    "sessions", metadata,
    Column("id", String(36), primary_key=True),
    Column("provider_org", String(80), nullable=False, index=True),
    Column("site", String(80), ForeignKey("sites.org"), nullable=False, index=True),
    Column("room_id", String(36), ForeignKey("rooms.id"), nullable=False),
    Column("service", String(60), nullable=False),
    Column("on_date", Date, nullable=False),
    Column("starts_at", UtcDateTime(), nullable=False),
    Column("ends_at", UtcDateTime(), nullable=False),
    Column("slot_minutes", Integer, nullable=False),
    Column("capacity_per_slot", Integer, nullable=False),
    Column("created_by", String(120), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    CheckConstraint("ends_at > starts_at", name="sessions_ends_after_start"),
    CheckConstraint("slot_minutes > 0 AND capacity_per_slot > 0", name="sessions_positive_sizes"),
)
Index("ix_sessions_room_time", sessions.c.room_id, sessions.c.starts_at)

slots = Table(
    "slots", metadata,
    Column("id", String(36), primary_key=True),
    Column("session_id", String(36), ForeignKey("sessions.id"), nullable=False, index=True),
    Column("starts_at", UtcDateTime(), nullable=False),
    Column("ends_at", UtcDateTime(), nullable=False),
    Column("capacity", Integer, nullable=False),
    Column("booked", Integer, nullable=False, default=0),
    CheckConstraint("booked >= 0 AND booked <= capacity", name="slots_within_capacity"),
)

appointments = Table(
    "appointments", metadata,
    Column("id", String(36), primary_key=True),
    Column("slot_id", String(36), ForeignKey("slots.id"), nullable=False, index=True),
    Column("session_id", String(36), ForeignKey("sessions.id"), nullable=False),
    Column("child_ref", String(64), nullable=False),
    Column("starts_at", UtcDateTime(), nullable=False),
    Column("ends_at", UtcDateTime(), nullable=False),
    Column("status", String(20), nullable=False),
    Column("referral_id", String(64), nullable=True),
    # free text stays in the provider's own store: it never goes on an event
    Column("cancel_reason", Text, nullable=True),
    Column("booked_by", String(120), nullable=False),
    Column("booked_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    CheckConstraint("status IN ('booked', 'cancelled', 'attended', 'was_not_brought')",
                    name="appointments_status_known"),
)
Index("ix_appointments_child_time", appointments.c.child_ref, appointments.c.starts_at)
