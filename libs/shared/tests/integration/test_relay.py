"""The outbox relay's batching and its connection, against the real RabbitMQ and PostgreSQL.

Each relay here polls once a minute, so an event that leaves within seconds left because a
commit woke the relay, not because a poll found it.
"""
from __future__ import annotations

import threading
import time
import uuid

import eventlet
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from pont_shared.contract.envelope import EVENTS_EXCHANGE
from pont_shared.messaging.db import make_engine
from pont_shared.messaging.outbox import OutboxRelay
from pont_shared.messaging.uow import UnitOfWork
from pont_shared.messaging.wire import WireObserver
from pont_shared.testing import fresh_database, random_name, wait_until

from .probe import Ping, metadata, tables

pytestmark = pytest.mark.integration
POLL_SECONDS = 60.0


class RecordingRelay(OutboxRelay):
    """The relay, noting the size of each batch it published; with `hold_first_batch`, the first
    batch's confirms are not read until the test releases them (a slow broker)."""

    def __init__(self, *args, hold_first_batch: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.batches: list[int] = []
        self.awaiting_confirms = threading.Event()
        self.released = threading.Event()
        if not hold_first_batch:
            self.released.set()

    def publish_next(self) -> int:
        published = super().publish_next()
        if published:
            self.batches.append(published)
        return published

    def _await_confirms(self, deadline: float) -> None:
        self.awaiting_confirms.set()
        self.released.wait(10)
        super()._await_confirms(deadline)


class Producer:
    def __init__(self, engine, relay: OutboxRelay):
        self.engine, self.relay = engine, relay
        self.sessions = sessionmaker(engine)
        self.thread = eventlet.spawn(relay.run)

    def emit(self, run: str, count: int) -> None:
        with UnitOfWork(self.sessions, tables, source="/pont/probe", on_commit=self.relay.wake) as uow:
            for n in range(count):
                uow.emit(Ping(run=run, n=n))
            uow.commit()

    def unsent(self) -> int:
        with self.engine.connect() as db:
            return db.execute(select(func.count()).where(tables.outbox.c.sent_at.is_(None))).scalar()

    def stop(self) -> None:
        self.relay.stop()
        self.thread.wait()


@pytest.fixture
def engine():
    with fresh_database("pont_relay") as url:
        engine = make_engine(url)
        metadata.create_all(engine)
        yield engine
        engine.dispose()


@pytest.fixture
def start_producer(engine, broker_url):
    producers = []

    def start(**options) -> Producer:
        relay = RecordingRelay(engine, tables.outbox, broker_url, random_name("relay"), poll_seconds=POLL_SECONDS,
                               **options)
        producers.append(Producer(engine, relay))
        return producers[-1]

    yield start
    for producer in producers:
        producer.stop()


@pytest.fixture
def observer(broker_url):
    observer = WireObserver(broker_url, bindings=[(EVENTS_EXCHANGE, Ping.TYPE)])
    yield observer
    observer.close()


def run_id() -> str:
    return uuid.uuid4().hex[:12]


def failures(relay: OutboxRelay) -> float:
    return REGISTRY.get_sample_value("pont_outbox_publish_failures_total", {"service": relay.service}) or 0.0


class TestAdaptiveBatching:
    def test_a_lone_event_leaves_at_once(self, start_producer, observer):
        producer, run = start_producer(), run_id()

        producer.emit(run, 1)

        observer.wait_for(lambda seen: any(e.data["run"] == run for e in seen), timeout=5)
        wait_until(lambda: producer.relay.batches, message="the relay did not finish its batch")  # noted after confirms
        assert producer.relay.batches == [1]

    def test_commits_made_while_a_batch_awaits_its_confirms_leave_together_in_the_next(
        self, start_producer, observer
    ):
        producer, run = start_producer(hold_first_batch=True), run_id()
        producer.emit(run, 1)
        wait_until(producer.relay.awaiting_confirms.is_set, message="the first batch was not published")

        for _ in range(3):
            producer.emit(run, 10)
        producer.relay.released.set()

        observer.wait_for(lambda seen: len([e for e in seen if e.data["run"] == run]) == 31, timeout=10)
        wait_until(lambda: sum(producer.relay.batches) == 31)
        assert producer.relay.batches == [1, 30]

    def test_a_backlog_larger_than_a_batch_leaves_in_full_batches_one_after_another(
        self, engine, broker_url, start_producer
    ):
        run = run_id()
        with UnitOfWork(sessionmaker(engine), tables, source="/pont/probe") as uow:  # committed before the relay runs
            for n in range(250):
                uow.emit(Ping(run=run, n=n))
            uow.commit()

        producer = start_producer(batch_size=100)

        wait_until(lambda: sum(producer.relay.batches) == 250, timeout=10)
        assert producer.unsent() == 0
        assert producer.relay.batches == [100, 100, 50]


class TestConnection:
    def test_an_idle_relay_keeps_its_connection_alive_with_heartbeats(self, start_producer, observer):
        producer, run = start_producer(heartbeat=2), run_id()
        producer.emit(run, 1)
        observer.wait_for(lambda seen: any(e.data["run"] == run for e in seen))
        connection, idle_since = producer.relay._conn, time.monotonic()

        # three heartbeat intervals without a publish: a relay that neither read the broker's
        # heartbeats nor sent its own would have lost the connection after two
        wait_until(lambda: (connection.last_heartbeat_received or 0) > idle_since + 6, timeout=15,
                   message="the idle relay stopped hearing the broker's heartbeats")
        producer.emit(run, 1)

        observer.wait_for(lambda seen: len([e for e in seen if e.data["run"] == run]) == 2)
        assert producer.relay._conn is connection
        assert failures(producer.relay) == 0

    def test_stopping_an_idle_relay_ends_its_run_without_waiting_for_the_poll(self, start_producer, observer):
        producer, run = start_producer(), run_id()
        producer.emit(run, 1)
        observer.wait_for(lambda seen: any(e.data["run"] == run for e in seen))

        producer.relay.stop()

        wait_until(lambda: producer.thread.dead, timeout=3, message="the relay kept running after stop()")
