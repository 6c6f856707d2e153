"""The reliability mechanisms, proven against the real RabbitMQ and PostgreSQL."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import eventlet
import pika
import pytest
import requests
from prometheus_client import REGISTRY
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from pont_shared.contract.envelope import DISCLOSURES_EXCHANGE, EVENTS_EXCHANGE, Envelope
from pont_shared.contract.events import DisclosureDelivered
from pont_shared.messaging.broker import broker_user
from pont_shared.messaging.db import make_engine
from pont_shared.messaging.outbox import OutboxRelay
from pont_shared.messaging.topology import HEADER_ATTEMPT, HEADER_PUBLISHER, requeue_name
from pont_shared.messaging.uow import UnitOfWork
from pont_shared.messaging.wire import WireObserver
from pont_shared.operations.dead_letters import list_dead_letters, replay_dead_letters
from pont_shared.testing import drop_broker_connections_of_this_process, fresh_database, http_url, wait_until

from .probe import ATTEMPTS, FAILING_RUNS, OUTAGE_RUNS, Ping, PingBatchConsumer, PingConsumer, effects, metadata, tables

pytestmark = pytest.mark.integration
SHARED_DIR = Path(__file__).resolve().parents[2]  # libs/shared, parent of the tests package


class Producer:
    """A service's write side: its own database, a unit of work and a running relay."""

    def __init__(self, url: str, broker_url: str):
        self.engine = make_engine(url)
        metadata.create_all(self.engine)
        self.relay = OutboxRelay(self.engine, tables.outbox, broker_url, "probe_producer", poll_seconds=0.1)
        self._thread = None

    def start(self):
        self._thread = eventlet.spawn(self.relay.run)
        return self

    def stop(self):
        if self._thread is not None:
            self.relay.stop()
            self._thread.wait()
        self.engine.dispose()

    def unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(sessionmaker(self.engine), tables, source="/pont/probe", on_commit=self.relay.wake)

    def emit(self, *pings: Ping) -> list[Envelope]:
        with self.unit_of_work() as uow:
            sent = [uow.emit(ping) for ping in pings]
            uow.commit()
        return sent

    def unsent(self) -> int:
        with self.engine.connect() as db:
            return db.execute(select(func.count()).where(tables.outbox.c.sent_at.is_(None))).scalar()


@pytest.fixture
def producer(broker_url):
    with fresh_database("pont_producer") as url:
        producer = Producer(url, broker_url).start()
        yield producer
        producer.stop()


@pytest.fixture
def observer(broker_url):
    observer = WireObserver(broker_url, bindings=[(EVENTS_EXCHANGE, Ping.TYPE)])
    yield observer
    observer.close()


@pytest.fixture
def consumer(start_service, make_settings, postgres_url, service_name):
    container = start_service(PingConsumer, make_settings(service_name, postgres_url), name=service_name)
    engine = make_engine(postgres_url)
    yield container, engine
    engine.dispose()


def run_id() -> str:
    return uuid.uuid4().hex[:12]


def effect_rows(engine, run: str) -> list:
    with engine.connect() as db:
        return db.execute(select(effects.c.event_id, effects.c.n).where(effects.c.run == run)).all()


def handled(service: str, result: str) -> float:
    value = REGISTRY.get_sample_value(
        "pont_events_handled_total", {"service": service, "queue": f"{service}.on_ping", "result": result})
    return value or 0.0


class TestTransactionalOutbox:
    def test_an_event_of_a_rolled_back_transaction_is_never_published(self, producer, observer):
        run = run_id()

        with pytest.raises(RuntimeError):
            with producer.unit_of_work() as uow:
                doomed = uow.emit(Ping(run=run, n=0))
                raise RuntimeError("the state change failed")
        marker = producer.emit(Ping(run=run, n=1))[0]

        observer.wait_for(lambda seen: any(e.id == marker.id for e in seen))
        assert doomed.id not in {e.id for e in observer.seen}
        # The broker sees the marker before its confirm reaches the relay and the row is marked sent.
        wait_until(lambda: producer.unsent() == 0, message="the outbox still holds the published marker")

    def test_a_committed_event_reaches_the_broker_as_a_cloudevent(self, producer, observer):
        run = run_id()

        sent = producer.emit(Ping(run=run, n=7))[0]

        seen = observer.wait_for(lambda seen: any(e.id == sent.id for e in seen))
        event = next(e for e in seen if e.id == sent.id)
        assert (event.type, event.source, event.specversion) == (Ping.TYPE, "/pont/probe", "1.0")
        assert event.data == {"run": run, "n": 7}
        assert event.correlationid

    def test_an_event_committed_before_the_relay_was_killed_is_published_after_restart(self, broker_url, observer):
        with fresh_database("pont_killed") as url:
            run = run_id()
            script = textwrap.dedent(f"""
                import os, signal, sys
                sys.path.insert(0, {str(SHARED_DIR)!r})
                from sqlalchemy.orm import sessionmaker
                from pont_shared.messaging.db import make_engine
                from pont_shared.messaging.outbox import OutboxRelay
                from pont_shared.messaging.uow import UnitOfWork
                from tests.integration.probe import Ping, metadata, tables

                class DiesBeforePublishing(OutboxRelay):
                    def _publish_confirmed(self, rows):
                        print("killing", flush=True)
                        os.kill(os.getpid(), signal.SIGKILL)

                engine = make_engine({url!r})
                metadata.create_all(engine)
                relay = DiesBeforePublishing(engine, tables.outbox, {broker_url!r}, "probe_producer")
                with UnitOfWork(sessionmaker(engine), tables, source="/pont/probe", on_commit=relay.wake) as uow:
                    uow.emit(Ping(run={run!r}, n=1))
                    uow.commit()
                relay.run()
            """)
            died = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
            assert died.returncode == -9, died.stderr
            assert "killing" in died.stdout
            observer.drain()
            assert not [e for e in observer.seen if e.data.get("run") == run]

            restarted = Producer(url, broker_url).start()
            try:
                observer.wait_for(lambda seen: any(e.data.get("run") == run for e in seen))
                wait_until(lambda: restarted.unsent() == 0)
            finally:
                restarted.stop()


    def test_a_disclosure_no_queue_takes_waits_in_the_outbox_until_its_recipient_connects(
        self, producer, broker_url
    ):
        org = f"health:{run_id()}"
        disclosure = DisclosureDelivered(
            disclosure_id="d1", child_ref="c_x", to_org=org, from_org="school:6612001", purpose="referral",
            subject_kind="referral", subject_id="r1", basis="consent", basis_ref="consent-1", content={})
        with producer.unit_of_work() as uow:
            sent = uow.emit(disclosure)
            uow.commit()

        wait_until(lambda: REGISTRY.get_sample_value("pont_outbox_unroutable_total", {"service": "probe_producer"}))
        assert producer.unsent() == 1
        recipient = InboxObserver(broker_url, org)
        with producer.engine.begin() as db:  # don't wait out the back-off in a test
            db.execute(tables.outbox.update().values(next_attempt_at=None))
        producer.relay.wake()

        received = recipient.wait_for(lambda seen: any(e.id == sent.id for e in seen))
        assert [e.data["to_org"] for e in received] == [org]
        wait_until(lambda: producer.unsent() == 0)
        recipient.close()


def InboxObserver(broker_url: str, org: str) -> WireObserver:
    """An agency's queue: bound to the disclosures exchange with its own organisation id."""
    return WireObserver(broker_url, bindings=[(DISCLOSURES_EXCHANGE, org)])


class TestIdempotentConsumer:
    def test_the_same_event_delivered_twice_has_one_effect(self, consumer, broker_url):
        container, engine = consumer
        run = run_id()
        envelope = Envelope.wrap(Ping(run=run, n=1), source="/pont/probe")
        body = envelope.model_dump_json()

        with pika.BlockingConnection(pika.URLParameters(broker_url)) as conn:
            channel = conn.channel()
            for _ in range(2):
                channel.basic_publish(EVENTS_EXCHANGE, Ping.TYPE, body,
                                      pika.BasicProperties(content_type="application/json", delivery_mode=2,
                                                           user_id=broker_user(broker_url)))

        wait_until(lambda: handled(container.service_name, "duplicate") >= 1)
        assert len(effect_rows(engine, run)) == 1
        assert handled(container.service_name, "handled") == 1

    def test_two_thousand_events_survive_the_broker_dropping_every_connection(self, consumer, producer):
        container, engine = consumer
        run = run_id()

        for batch in range(20):
            producer.emit(*(Ping(run=run, n=batch * 100 + i) for i in range(100)))
            if batch == 6:
                wait_until(lambda: len(effect_rows(engine, run)) > 0, timeout=10)
                assert drop_broker_connections_of_this_process() >= 2  # the relay's and the consumer's

        wait_until(lambda: len(effect_rows(engine, run)) >= 2000 and producer.unsent() == 0, timeout=90)
        rows = effect_rows(engine, run)
        assert len(rows) == 2000
        assert sorted(n for _id, n in rows) == list(range(2000))


class TestReadiness:
    def test_ready_only_once_the_consumers_are_attached_again_after_the_broker_drops_them(self, consumer, producer):
        container, engine = consumer
        ready = f"{http_url(container)}/ready"

        def checks() -> dict:
            answer = requests.get(ready, timeout=5)
            return answer.json()["checks"] if answer.status_code == 200 else {}

        assert wait_until(checks, message="never ready") == {"broker": True, "database": True, "consumers": True}
        assert drop_broker_connections_of_this_process() >= 1
        wait_until(lambda: checks().get("consumers"), timeout=30, message="not ready again")
        run = run_id()
        producer.emit(Ping(run=run, n=1))
        wait_until(lambda: effect_rows(engine, run), timeout=10, message="ready, but the ping was not consumed")


class TestAcknowledgements:
    def test_a_slow_handler_does_not_hold_up_the_events_behind_it(
        self, start_service, make_settings, postgres_url, service_name, producer
    ):
        # prefetch 4: events finished behind the slow one are acked together only while few wait
        start_service(PingConsumer, make_settings(service_name, postgres_url, max_workers=4), name=service_name)
        engine = make_engine(postgres_url)
        slow, fast = run_id(), run_id()

        producer.emit(Ping(run=slow, n=-60))  # six seconds of work
        producer.emit(*(Ping(run=fast, n=i) for i in range(40)))

        wait_until(lambda: len(effect_rows(engine, fast)) == 40, timeout=5,
                   message="the events behind a slow one waited for it")
        assert effect_rows(engine, slow) == []  # still being handled
        wait_until(lambda: effect_rows(engine, slow), timeout=15)
        engine.dispose()


class TestRetryThenDeadLetter:
    def test_a_failing_handler_is_retried_with_growing_delay_then_dead_lettered_and_replayed_once(
        self, consumer, producer, broker_url
    ):
        container, engine = consumer
        service = container.service_name
        bad_run, good_run = run_id(), run_id()
        FAILING_RUNS.add(bad_run)

        bad = producer.emit(Ping(run=bad_run, n=0))[0]
        producer.emit(*(Ping(run=good_run, n=i) for i in range(5)))

        wait_until(lambda: len(effect_rows(engine, good_run)) == 5)
        assert len(ATTEMPTS.get(bad.id, [])) < 4, "later events waited for the failing one"
        letters = wait_until(lambda: list_dead_letters(broker_url, service), timeout=10)
        attempts = ATTEMPTS[bad.id]
        gaps = [later - earlier for earlier, later in zip(attempts, attempts[1:], strict=False)]
        delays = container.config["PONT_SETTINGS"].retry_delays
        assert len(attempts) == 4  # the first try and three retries (PONT_RETRY_DELAYS)
        assert delays[0] < delays[1] < delays[2]
        # each retry waited at least its own, growing, delay (measured gaps carry scheduling jitter
        # of the same size as these test delays, so they are not compared with each other)
        assert all(gap >= delay for gap, delay in zip(gaps, delays, strict=True)), (gaps, delays)
        assert letters[0]["event_id"] == bad.id
        # the error's type, not its message: a message may quote a child's data
        assert letters[0]["error"].startswith("RuntimeError") and bad_run not in letters[0]["error"]
        assert effect_rows(engine, bad_run) == []

        FAILING_RUNS.discard(bad_run)
        assert replay_dead_letters(broker_url, service) == 1
        wait_until(lambda: effect_rows(engine, bad_run))
        assert replay_dead_letters(broker_url, service) == 0
        assert list_dead_letters(broker_url, service) == []
        assert len(effect_rows(engine, bad_run)) == 1


    def test_an_unreachable_database_postpones_the_event_without_spending_its_retries(
        self, consumer, producer, broker_url
    ):
        container, engine = consumer
        service = container.service_name
        run = run_id()
        outages = len(container.config["PONT_SETTINGS"].retry_delays) + 3  # more than the budget
        OUTAGE_RUNS[run] = outages

        event = producer.emit(Ping(run=run, n=1))[0]

        wait_until(lambda: effect_rows(engine, run), timeout=30)
        assert len(ATTEMPTS[event.id]) == outages + 1
        assert list_dead_letters(broker_url, service) == []
        assert handled(service, "postponed") >= outages and handled(service, "retried") == 0


class TestBatchConsumer:
    def test_a_batch_applies_each_event_once_and_isolates_a_failing_one(
        self, start_service, make_settings, postgres_url, service_name, producer, broker_url
    ):
        start_service(PingBatchConsumer, make_settings(service_name, postgres_url, max_workers=100),
                                  name=service_name)
        engine = make_engine(postgres_url)
        good, bad = run_id(), run_id()
        FAILING_RUNS.add(bad)

        sent = producer.emit(*(Ping(run=good, n=i) for i in range(300)))
        producer.emit(Ping(run=bad, n=0))
        with pika.BlockingConnection(pika.URLParameters(broker_url)) as conn:  # redeliver 20 of them
            channel = conn.channel()
            for envelope in sent[:20]:
                channel.basic_publish(EVENTS_EXCHANGE, Ping.TYPE, envelope.model_dump_json(),
                                      pika.BasicProperties(content_type="application/json", delivery_mode=2,
                                                           user_id=broker_user(broker_url)))

        letters = wait_until(lambda: list_dead_letters(broker_url, service_name), timeout=15)
        wait_until(lambda: len(effect_rows(engine, good)) >= 300)
        rows = effect_rows(engine, good)
        assert sorted(n for _id, n in rows) == list(range(300))
        assert effect_rows(engine, bad) == []
        assert [letter["queue"] for letter in letters] == [f"{service_name}.on_pings"]
        engine.dispose()

def test_a_message_that_is_not_an_event_is_dead_lettered_at_once(consumer, broker_url):
    container, _engine = consumer

    with pika.BlockingConnection(pika.URLParameters(broker_url)) as conn:
        conn.channel().basic_publish(EVENTS_EXCHANGE, Ping.TYPE, b'{"not": "an event"}',
                                     pika.BasicProperties(content_type="application/json", delivery_mode=2))

    letters = wait_until(lambda: list_dead_letters(broker_url, container.service_name))
    assert letters[0]["error"].startswith("malformed envelope") and letters[0]["attempts"] == 0


@pytest.fixture
def impostor():
    """A broker user of its own (not the consumer's), allowed to publish Pings to pont.events."""
    user, password = f"impostor_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    for args in (["add_user", user, password], ["set_permissions", "-p", "/", user, "^$", "^pont\\.events$", "^$"]):
        subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=60)
    yield user, f"amqp://{user}:{password}@127.0.0.1:5672/"
    subprocess.run(["rabbitmqctl", "delete_user", user], capture_output=True, timeout=60)


def test_an_event_whose_publisher_is_not_its_source_is_dead_lettered(consumer, broker_url, impostor):
    container, engine = consumer
    user, uri = impostor
    run = run_id()
    forged = Envelope.wrap(Ping(run=run, n=1), source="/pont/referrals")  # claims another service
    genuine = Envelope.wrap(Ping(run=run, n=2), source=f"/pont/{user}")  # its own name: accepted
    unsigned = Envelope.wrap(Ping(run=run, n=3), source="/pont/probe")  # no user_id at all
    with pika.BlockingConnection(pika.URLParameters(uri)) as conn:
        channel = conn.channel()
        channel.confirm_delivery()
        for envelope in (forged, genuine):
            channel.basic_publish(EVENTS_EXCHANGE, Ping.TYPE, envelope.model_dump_json(),
                                  pika.BasicProperties(content_type="application/json", user_id=user))
    with pika.BlockingConnection(pika.URLParameters(broker_url)) as conn:
        conn.channel().basic_publish(EVENTS_EXCHANGE, Ping.TYPE, unsigned.model_dump_json(),
                                     pika.BasicProperties(content_type="application/json"))

    letters = wait_until(lambda: (found := list_dead_letters(broker_url, container.service_name))
                         and len(found) == 2 and found)
    errors = sorted(letter["error"] for letter in letters)
    assert errors == ["publisher mismatch: no user_id on an event from /pont/probe",
                      f"publisher mismatch: user '{user}' may not publish events from /pont/referrals"]
    assert all(letter["attempts"] == 0 for letter in letters)
    wait_until(lambda: [n for _id, n in effect_rows(engine, run)] == [2])


def test_a_retried_event_keeps_its_first_publisher(consumer, broker_url, impostor):
    """A retry comes back re-published by the consumer's own user; the publisher it is checked
    against is still the one RabbitMQ vouched for on first arrival."""
    container, _engine = consumer
    user, uri = impostor
    run = run_id()
    FAILING_RUNS.add(run)
    try:
        with pika.BlockingConnection(pika.URLParameters(uri)) as conn:
            channel = conn.channel()
            channel.confirm_delivery()
            channel.basic_publish(EVENTS_EXCHANGE, Ping.TYPE,
                                  Envelope.wrap(Ping(run=run, n=1), source=f"/pont/{user}").model_dump_json(),
                                  pika.BasicProperties(content_type="application/json", user_id=user))
        letters = wait_until(lambda: list_dead_letters(broker_url, container.service_name), timeout=15)
    finally:
        FAILING_RUNS.discard(run)
    retries = len(container.config["PONT_SETTINGS"].retry_delays)
    assert [letter["attempts"] for letter in letters] == [retries]  # every retry ran: none rejected
    assert "publisher mismatch" not in letters[0]["error"]

    # a requeued copy is judged by the publisher recorded on it, not by the user that requeued it
    forged = Envelope.wrap(Ping(run=run, n=2), source="/pont/referrals")
    with pika.BlockingConnection(pika.URLParameters(broker_url)) as conn:
        conn.channel().basic_publish(
            requeue_name(container.service_name), f"{container.service_name}.on_ping", forged.model_dump_json(),
            pika.BasicProperties(content_type="application/json", user_id=broker_user(broker_url),
                                 headers={HEADER_PUBLISHER: user, HEADER_ATTEMPT: 1}))
    letters = wait_until(lambda: (found := list_dead_letters(broker_url, container.service_name))
                         and len(found) == 2 and found)
    assert f"publisher mismatch: user '{user}' may not publish events from /pont/referrals" in [
        letter["error"] for letter in letters]
