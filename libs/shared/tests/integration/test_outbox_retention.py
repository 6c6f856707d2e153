"""Published outbox rows lose their bodies (are deleted) after the retention period; unsent
rows stay, however old. Real RabbitMQ and PostgreSQL, the relay as services run it."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import eventlet
import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import sessionmaker

from pont_shared.contract.envelope import EVENTS_EXCHANGE
from pont_shared.messaging.db import make_engine
from pont_shared.messaging.outbox import OutboxRelay
from pont_shared.messaging.uow import UnitOfWork
from pont_shared.messaging.wire import WireObserver
from pont_shared.testing import fresh_database, random_name, wait_until

from .probe import Ping, metadata, tables

pytestmark = pytest.mark.integration
outbox = tables.outbox


@pytest.fixture
def engine():
    with fresh_database("pont_outbox_retention") as url:
        engine = make_engine(url)
        metadata.create_all(engine)
        yield engine
        engine.dispose()


def rows(engine, *where) -> int:
    with engine.connect() as db:
        return db.execute(select(func.count()).select_from(outbox).where(*where)).scalar()


def test_published_rows_are_deleted_after_the_retention_period_and_unsent_rows_stay(engine, broker_url):
    run = uuid.uuid4().hex[:12]
    # an unsent row, long overdue but not yet due for another attempt (the relay's backlog)
    backlog_id = str(uuid.uuid4())
    with engine.begin() as db:
        db.execute(insert(outbox).values(
            event_id=backlog_id, event_type=Ping.TYPE, exchange=EVENTS_EXCHANGE, routing_key=Ping.TYPE,
            body="{}", created_at=datetime.now(UTC) - timedelta(days=30), attempts=3,
            next_attempt_at=datetime.now(UTC) + timedelta(hours=1)))
    relay = OutboxRelay(engine, outbox, broker_url, random_name("relay"), poll_seconds=0.1,
                        retention=timedelta(seconds=2))
    observer = WireObserver(broker_url, bindings=[(EVENTS_EXCHANGE, Ping.TYPE)])
    thread = eventlet.spawn(relay.run)
    try:
        with UnitOfWork(sessionmaker(engine), tables, source="/pont/probe", on_commit=relay.wake) as uow:
            for n in range(3):
                uow.emit(Ping(run=run, n=n))
            uow.commit()
        observer.wait_for(lambda seen: len([e for e in seen if e.data["run"] == run]) == 3, timeout=10)
        published_at = wait_until(lambda: rows(engine, outbox.c.sent_at.is_not(None)) == 3 and datetime.now(UTC),
                                  timeout=10)

        wait_until(lambda: rows(engine, outbox.c.sent_at.is_not(None)) == 0, timeout=15,
                   message="published rows outlived the retention period")

        assert datetime.now(UTC) - published_at >= timedelta(seconds=1)   # not swept before their time
        assert rows(engine, outbox.c.event_id == backlog_id, outbox.c.sent_at.is_(None)) == 1
    finally:
        relay.stop()
        thread.wait()
        observer.close()


def test_the_sweep_spares_rows_published_within_the_retention_period(engine, broker_url):
    relay = OutboxRelay(engine, outbox, broker_url, random_name("relay"), retention=timedelta(hours=24))
    now = datetime.now(UTC)
    with engine.begin() as db:
        for age in (timedelta(hours=23), timedelta(hours=25)):
            db.execute(insert(outbox).values(
                event_id=str(uuid.uuid4()), event_type=Ping.TYPE, exchange=EVENTS_EXCHANGE, routing_key=Ping.TYPE,
                body='{"content": "personal"}', created_at=now - age, attempts=0))
        db.execute(update(outbox).values(sent_at=outbox.c.created_at))

    assert relay.forget_published(now) == 1
    with engine.connect() as db:
        [kept] = db.execute(select(outbox.c.sent_at)).scalars().all()
    assert now - kept < timedelta(hours=24)
