"""The booking rules hold in PostgreSQL itself, whatever code writes the rows."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as DbSession

from bookings.domain import ChildBusy, RoomTaken, SlotFull, new_id
from bookings.orm import appointments, rooms, sessions, sites, slots
from bookings.repository import BookingsRepository
from bookings.service import MIGRATIONS
from pont_shared.messaging.db import make_engine
from pont_shared.operations.migrations import upgrade

pytestmark = pytest.mark.integration

T0 = datetime(2027, 3, 2, 9, tzinfo=UTC)


@pytest.fixture
def db(postgres_url):
    engine = make_engine(postgres_url)
    upgrade(engine, MIGRATIONS)
    with engine.begin() as conn:
        conn.execute(insert(sites).values(org="school:1", created_at=T0))
        conn.execute(insert(rooms).values(id="r1", site="school:1", name="Medical room"))
    yield engine
    engine.dispose()


def session_row(start, end, room="r1"):
    return dict(id=new_id(), provider_org="health:x", site="school:1", room_id=room, service="school_nursing",
                on_date=start.date(), starts_at=start, ends_at=end, slot_minutes=20, capacity_per_slot=1,
                created_by="n", created_at=T0)


def appointment_row(slot_id, session_id, child, start, end, status="booked"):
    return dict(id=new_id(), slot_id=slot_id, session_id=session_id, child_ref=child, starts_at=start,
                ends_at=end, status=status, booked_by="n", booked_at=T0, updated_at=T0)


def add_session_with_slot(db, start, end, capacity=1):
    row = session_row(start, end)
    slot_id = new_id()
    with db.begin() as conn:
        conn.execute(insert(sessions).values(**row))
        conn.execute(insert(slots).values(id=slot_id, session_id=row["id"], starts_at=start, ends_at=end,
                                          capacity=capacity, booked=0))
    return row["id"], slot_id


class TestDatabaseRules:
    def test_a_room_cannot_hold_overlapping_sessions(self, db):
        add_session_with_slot(db, T0, T0 + timedelta(hours=1))

        with pytest.raises(IntegrityError, match="sessions_room_no_overlap"):
            with db.begin() as conn:
                overlapping = session_row(T0 + timedelta(minutes=30), T0 + timedelta(hours=2))
                conn.execute(insert(sessions).values(**overlapping))
        with db.begin() as conn:  # back to back is fine
            conn.execute(insert(sessions).values(**session_row(T0 + timedelta(hours=1), T0 + timedelta(hours=2))))

    def test_a_slot_cannot_go_over_capacity(self, db):
        _, slot_id = add_session_with_slot(db, T0, T0 + timedelta(minutes=20), capacity=2)

        with pytest.raises(IntegrityError, match="slots_within_capacity"):
            with db.begin() as conn:
                conn.execute(update(slots).where(slots.c.id == slot_id).values(booked=3))

    def test_a_child_cannot_hold_overlapping_appointments_unless_cancelled(self, db):
        session_id, slot_id = add_session_with_slot(db, T0, T0 + timedelta(minutes=20), capacity=5)
        end = T0 + timedelta(minutes=20)
        with db.begin() as conn:
            cancelled = appointment_row(slot_id, session_id, "c_1", T0, end, "cancelled")
            conn.execute(insert(appointments).values(**cancelled))
            conn.execute(insert(appointments).values(**appointment_row(slot_id, session_id, "c_1", T0, end)))

        with pytest.raises(IntegrityError, match="appointments_child_no_overlap"):
            with db.begin() as conn:
                conn.execute(insert(appointments).values(**appointment_row(slot_id, session_id, "c_1", T0, end)))

    def test_the_repository_reports_a_violation_as_the_domain_error(self, db):
        session_id, slot_id = add_session_with_slot(db, T0, T0 + timedelta(minutes=20))
        end = T0 + timedelta(minutes=20)
        from bookings.domain import Appointment, Session, Slot

        with DbSession(db) as s:
            repo = BookingsRepository(s)
            repo.add_appointment(Appointment(new_id(), slot_id, session_id, "c_2", T0, end), booked_by="n", now=T0)
            with pytest.raises(ChildBusy):
                repo.add_appointment(Appointment(new_id(), slot_id, session_id, "c_2", T0, end), booked_by="n", now=T0)
            s.rollback()
            with pytest.raises(SlotFull):
                repo.save_slot(Slot(slot_id, session_id, T0, end, capacity=1, booked=2))
            s.rollback()
            clash = Session(new_id(), "health:x", "school:1", "Medical room", "school_nursing", T0, end, 20, 1)
            with pytest.raises(RoomTaken):
                repo.add_session(clash, "r1", created_by="n", now=T0)


class TestMigrations:
    def test_the_migrations_build_exactly_the_tables_the_code_declares(self, db):
        from alembic.autogenerate import compare_metadata
        from alembic.migration import MigrationContext

        from bookings.orm import metadata

        with db.connect() as conn:
            drift = compare_metadata(MigrationContext.configure(conn), metadata)

        assert drift == []
