"""`list_sessions`: the provider and the host school each read back their own sessions, nobody else's."""
from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest
from sqlalchemy.orm import sessionmaker

from bookings import handlers
from bookings.commands import Actor, ScheduleSession
from bookings.config import SCHOOL_ZONE
from bookings.orm import tables
from bookings.service import MIGRATIONS
from pont_shared.contract.rpc.bookings import SessionIn
from pont_shared.messaging.db import make_engine
from pont_shared.messaging.uow import UnitOfWork
from pont_shared.operations.migrations import upgrade

pytestmark = pytest.mark.integration

NURSE = Actor("nurse1", "health:cardiff-vale", frozenset({"school_nurse"}))
SCHOOL = Actor("dsl1", "school:6612001", frozenset({"dsl"}))
OTHER = Actor("nurse2", "health:aneurin-bevan", frozenset({"school_nurse"}))


def test_sessions_are_listed_for_their_provider_and_host_school_only(postgres_url):
    engine = make_engine(postgres_url)
    upgrade(engine, MIGRATIONS)
    new_uow = sessionmaker(engine, expire_on_commit=False)

    def uow():
        return UnitOfWork(new_uow, tables, source="/pont/bookings")

    try:
        later = handlers.schedule_session(uow(), ScheduleSession(by=NURSE, session=SessionIn(
            site="school:6612001", room="Medical room", service="school_nursing", date=date(2027, 3, 3),
            start=time(9), end=time(10), slot_minutes=20, capacity_per_slot=1)), clock=_now, zone=SCHOOL_ZONE)
        sooner = handlers.schedule_session(uow(), ScheduleSession(by=NURSE, session=SessionIn(
            site="school:6612001", room="Medical room", service="school_nursing", date=date(2027, 3, 2),
            start=time(13), end=time(14), slot_minutes=30, capacity_per_slot=2)), clock=_now, zone=SCHOOL_ZONE)

        mine = handlers.list_sessions(uow(), NURSE, zone=SCHOOL_ZONE)
        hosted = handlers.list_sessions(uow(), SCHOOL, zone=SCHOOL_ZONE)

        assert [s["id"] for s in mine] == [sooner["id"], later["id"]]
        assert [s["id"] for s in hosted] == [sooner["id"], later["id"]]
        assert [len(s["slots"]) for s in mine] == [2, 3]
        assert mine[0]["slots"][0] == {**sooner["slots"][0], "booked": 0}
        assert mine[0]["start"] == "2027-03-02T13:00:00+00:00"
        assert handlers.list_sessions(uow(), OTHER, zone=SCHOOL_ZONE) == []
    finally:
        engine.dispose()


def _now():
    return datetime(2027, 3, 1, 9, tzinfo=UTC)
