"""`make bench-events`: events/s through Pont's reliable pipeline and through nameko's plain dispatcher.

Reliable: unit of work commits events to the outbox (PostgreSQL) → relay publishes with
pipelined confirms → `@handles` consumer applies each once (effect row + inbox row, one
transaction, ack after commit) on its own PostgreSQL database.
Plain: nameko `EventDispatcher` (publishes outside any transaction) → `@event_handler`
writing the same effect row (no inbox, acks even on failure).
Both measured from the first commit/dispatch to the last effect row, on this machine.
As deployed, each consumer is a service process of its own (`pont_shared.operations.runner`), and the
producing side — with its relay, or its dispatcher — runs in this process.
Raw broker ceiling: the same number of persistent messages published by bare py-amqp with
confirms pipelined (batches as large as the relay's), consumed and acked by a bare py-amqp
consumer in another process; no database, no envelope — what this machine's broker allows.
"""
from __future__ import annotations

import eventlet

eventlet.monkey_patch()  # noqa: E402

import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import ClassVar  # noqa: E402

import amqp  # noqa: E402
from kombu import Connection  # noqa: E402
from nameko.containers import ServiceContainer  # noqa: E402
from nameko.events import EventDispatcher, event_handler  # noqa: E402
from nameko.rpc import rpc  # noqa: E402
from nameko.standalone.rpc import ClusterRpcProxy  # noqa: E402
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select  # noqa: E402
from sqlalchemy.orm import sessionmaker  # noqa: E402

from pont_shared.contract.envelope import EVENTS_EXCHANGE, Envelope, Payload  # noqa: E402
from pont_shared.messaging.broker import connect_amqp  # noqa: E402
from pont_shared.messaging.consumer import handles  # noqa: E402
from pont_shared.messaging.db import define_messaging_tables, make_engine  # noqa: E402
from pont_shared.messaging.dependencies import UnitOfWorkProvider  # noqa: E402
from pont_shared.messaging.outbox import OutboxRelay, PublisherConnection  # noqa: E402
from pont_shared.messaging.topology import dead_letter_queue_name, ensure_shared  # noqa: E402
from pont_shared.messaging.uow import UnitOfWork  # noqa: E402
from pont_shared.testing import (  # noqa: E402
    fresh_database,
    random_name,
    service_process,
    wait_until,
    web_address,
)
from pont_shared.testing.fixtures import delete_queues  # noqa: E402

N_RELIABLE = int(os.environ.get("BENCH_EVENTS", "20000"))
N_PLAIN = int(os.environ.get("BENCH_PLAIN_EVENTS", "5000"))
BATCH = int(os.environ.get("BENCH_BATCH", "200"))
RELAY_BATCH = 1000
AMQP_URI = os.environ.get("AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/")


class BenchTick(Payload):
    TYPE: ClassVar[str] = "pont.bench.ticked.v1"
    n: int


metadata = MetaData()
tables = define_messaging_tables(metadata)
effects = Table("effects", metadata, Column("id", Integer, primary_key=True), Column("event_id", String(64)),
                Column("n", Integer))


class ReliableConsumer:
    name = "bench_reliable"
    uow = UnitOfWorkProvider(metadata, tables)

    @handles(BenchTick, batch_size=BATCH)
    def on_ticks(self, events):
        with self.uow as uow:
            fresh = uow.fresh(events)
            if fresh:
                uow.session.execute(insert(effects), [{"event_id": e.id, "n": e.data["n"]} for e in fresh])
            uow.commit()


class PlainProducer:
    name = "bench_plain_producer"
    dispatch = EventDispatcher()

    @rpc
    def fire(self, count):
        for n in range(count):
            self.dispatch("ticked", {"n": n})


class PlainConsumer:
    name = "bench_plain_consumer"
    sessions = None  # set on first use, from PONT_BENCH_PLAIN_DATABASE_URL

    @event_handler("bench_plain_producer", "ticked")
    def on_tick(self, payload):
        if PlainConsumer.sessions is None:
            PlainConsumer.sessions = sessionmaker(make_engine(os.environ["PONT_BENCH_PLAIN_DATABASE_URL"]))
        with PlainConsumer.sessions() as session:
            session.execute(insert(effects).values(event_id="plain", n=payload["n"]))
            session.commit()


def count(engine) -> int:
    with engine.connect() as db:
        return db.execute(select(func.count()).select_from(effects)).scalar()


@contextmanager
def consumer_process(spec: str, name: str, queue: str, database_url: str, max_workers: int):
    """The consumer as its own service process; its queue deleted afterwards."""
    try:
        with service_process(spec, name, database_url, ready=lambda: consumers(queue) > 0,
                             PYTHONPATH=str(Path(__file__).parent), PONT_MAX_WORKERS=str(max_workers),
                             PONT_BENCH_PLAIN_DATABASE_URL=database_url):
            yield
    finally:
        with Connection(AMQP_URI) as conn:
            for doomed in (queue, dead_letter_queue_name(name)):
                conn.default_channel.queue_delete(doomed)


def consumers(queue: str) -> int:
    with Connection(AMQP_URI) as conn:
        try:
            return conn.default_channel.queue_declare(queue, passive=True).consumer_count
        except conn.channel_errors:
            return 0


def bench_reliable() -> tuple[float, float]:
    with fresh_database("bench_producer") as producer_url, fresh_database("bench_consumer") as consumer_url:
        name = random_name("bench_reliable")
        producer_engine = make_engine(producer_url)
        metadata.create_all(producer_engine)
        consumer_engine = make_engine(consumer_url)
        relay = OutboxRelay(producer_engine, tables.outbox, AMQP_URI, "bench_producer", batch_size=RELAY_BATCH)
        sessions = sessionmaker(producer_engine)
        # prefetch = max_workers = 3 batches: a batch finishing before the one ahead of it waits for
        # it within the ack window (half the prefetch), and both are settled by one multiple ack
        with consumer_process("bench_events:ReliableConsumer", name, f"{name}.on_ticks", consumer_url, 3 * BATCH):
            relay_thread = eventlet.spawn(relay.run)
            try:
                started = time.perf_counter()
                for batch_start in range(0, N_RELIABLE, 100):
                    with UnitOfWork(sessions, tables, source="/pont/bench", on_commit=relay.wake) as uow:
                        for n in range(batch_start, min(batch_start + 100, N_RELIABLE)):
                            uow.emit(BenchTick(n=n))
                        uow.commit()
                committed = time.perf_counter() - started
                wait_until(lambda: count(consumer_engine) >= N_RELIABLE, timeout=600, interval=0.05)
                elapsed = time.perf_counter() - started
            finally:
                relay.stop()
                relay_thread.wait()
                producer_engine.dispose()
                consumer_engine.dispose()
        return N_RELIABLE / elapsed, N_RELIABLE / committed


def bench_plain() -> float:
    with fresh_database("bench_plain") as url:
        engine = make_engine(url)
        metadata.create_all(engine)
        config = {"AMQP_URI": AMQP_URI, "max_workers": 40, "WEB_SERVER_ADDRESS": web_address()}
        queue = "evt-bench_plain_producer-ticked--bench_plain_consumer.on_tick"
        with consumer_process("bench_events:PlainConsumer", PlainConsumer.name, queue, url, 40):
            producer = ServiceContainer(PlainProducer, config)
            producer.start()
            try:
                started = time.perf_counter()
                with ClusterRpcProxy(config, timeout=600) as cluster:
                    cluster.bench_plain_producer.fire(N_PLAIN)
                wait_until(lambda: count(engine) >= N_PLAIN, timeout=600, interval=0.05)
                elapsed = time.perf_counter() - started
            finally:
                producer.stop()
                delete_queues(producer)   # its rpc queue, which nameko leaves behind
                engine.dispose()
        return N_PLAIN / elapsed


def bench_raw_ceiling() -> float:
    queue, routing_key = random_name("bench_raw"), "pont.bench.raw.v1"
    body = Envelope.wrap(BenchTick(n=0), source="/pont/bench").model_dump_json().encode()
    publisher = connect_amqp(AMQP_URI, connection_class=PublisherConnection)
    ensure_shared(publisher)
    channel = publisher.channel()
    channel.queue_declare(queue, durable=True, auto_delete=False)
    channel.queue_bind(queue, EVENTS_EXCHANGE, routing_key)
    channel.confirm_select()
    unconfirmed: set[int] = set()

    def on_ack(tag, multiple):
        unconfirmed.difference_update([t for t in unconfirmed if t <= tag] if multiple else [tag])

    channel.events["basic_ack"].add(on_ack)
    consumer = subprocess.Popen([sys.executable, __file__, "--raw-consumer", queue, str(N_RELIABLE)],
                                stdout=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: consumers(queue) > 0, timeout=60, interval=0.05)
        started, tag = time.perf_counter(), 0
        for batch_start in range(0, N_RELIABLE, RELAY_BATCH):
            for n in range(batch_start, min(batch_start + RELAY_BATCH, N_RELIABLE)):
                channel.basic_publish(
                    amqp.Message(body, content_type="application/json", content_encoding="utf-8", delivery_mode=2,
                                 message_id=str(n), type=BenchTick.TYPE),
                    exchange=EVENTS_EXCHANGE, routing_key=routing_key)
                tag += 1
                unconfirmed.add(tag)
            while unconfirmed:
                publisher.drain_events(timeout=60)
        finished = consumer.stdout.readline()
        elapsed = time.perf_counter() - started
        if finished.strip() != "done":
            raise RuntimeError("the raw consumer stopped before taking every message")
    finally:
        consumer.kill()
        consumer.wait()
        channel.queue_delete(queue)
        publisher.close()
    return N_RELIABLE / elapsed


def raw_consumer(queue: str, count: int) -> None:
    """Take `count` messages off `queue`, acking a batch at a time as the reliable consumer does;
    print "done"."""
    conn = connect_amqp(AMQP_URI)
    channel = conn.channel()
    channel.basic_qos(0, 3 * BATCH, False)
    taken = 0

    def on_message(message):
        nonlocal taken
        taken += 1
        if taken % BATCH == 0 or taken == count:
            channel.basic_ack(message.delivery_tag, multiple=True)

    channel.basic_consume(queue, callback=on_message)
    while taken < count:
        conn.drain_events(timeout=60)
    print("done", flush=True)
    conn.close()


def main() -> int:
    if sys.argv[1:2] == ["--raw-consumer"]:
        raw_consumer(sys.argv[2], int(sys.argv[3]))
        return 0
    print(f"bench-events on {os.cpu_count()} cores; broker and PostgreSQL on this machine")
    ceiling = bench_raw_ceiling()
    print(f"raw broker ceiling (bare py-amqp, confirms pipelined, {RELAY_BATCH} a batch → bare consumer, no database): "
          f"{ceiling:,.0f} messages/s over {N_RELIABLE:,} messages")
    end_to_end, commit_rate = bench_reliable()
    print(f"reliable pipeline (outbox → confirms → idempotent batch consumer of {BATCH}, PostgreSQL): "
          f"{end_to_end:,.0f} events/s end to end over {N_RELIABLE:,} events "
          f"(producer committed at {commit_rate:,.0f} events/s)")
    print("  target (not asserted): >= 6,000 events/s end to end; before #14 (another machine): 8,545 events/s")
    plain = bench_plain()
    print(f"nameko EventDispatcher → event_handler (no outbox, no inbox):             "
          f"{plain:,.0f} events/s over {N_PLAIN:,} events")
    return 0


if __name__ == "__main__":
    sys.exit(main())
