"""`make bench-events`: events/s through Pont's reliable pipeline and through nameko's plain dispatcher.

Reliable: unit of work commits events to the outbox (PostgreSQL) → relay publishes with
pipelined confirms → `@handles` consumer applies each once (effect row + inbox row, one
transaction, ack after commit) on its own PostgreSQL database.
Plain: nameko `EventDispatcher` (publishes outside any transaction) → `@event_handler`
writing the same effect row (no inbox, acks even on failure).
Both measured from the first commit/dispatch to the last effect row, on this machine.
As deployed, each consumer is a service process of its own (`pont_shared.runner`), and the
producing side — with its relay, or its dispatcher — runs in this process.
"""
from __future__ import annotations

import eventlet

eventlet.monkey_patch()  # noqa: E402

import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import ClassVar  # noqa: E402

from kombu import Connection  # noqa: E402
from nameko.containers import ServiceContainer  # noqa: E402
from nameko.events import EventDispatcher, event_handler  # noqa: E402
from nameko.rpc import rpc  # noqa: E402
from nameko.standalone.rpc import ClusterRpcProxy  # noqa: E402
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select  # noqa: E402
from sqlalchemy.orm import sessionmaker  # noqa: E402

from pont_shared.consumer import handles  # noqa: E402
from pont_shared.db import define_messaging_tables, make_engine  # noqa: E402
from pont_shared.dependencies import UnitOfWorkProvider  # noqa: E402
from pont_shared.envelope import Payload  # noqa: E402
from pont_shared.outbox import OutboxRelay  # noqa: E402
from pont_shared.testing import fresh_database, random_name, service_process, wait_until  # noqa: E402
from pont_shared.testing.fixtures import delete_queues  # noqa: E402
from pont_shared.topology import dead_letter_queue_name  # noqa: E402
from pont_shared.uow import UnitOfWork  # noqa: E402

N_RELIABLE = int(os.environ.get("BENCH_EVENTS", "20000"))
N_PLAIN = int(os.environ.get("BENCH_PLAIN_EVENTS", "5000"))
BATCH = int(os.environ.get("BENCH_BATCH", "200"))
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
        relay = OutboxRelay(producer_engine, tables.outbox, AMQP_URI, "bench_producer", batch_size=1000)
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
        config = {"AMQP_URI": AMQP_URI, "max_workers": 40, "WEB_SERVER_ADDRESS": "127.0.0.1:0"}
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


def main() -> int:
    print(f"bench-events on {os.cpu_count()} cores; broker and PostgreSQL on this machine")
    end_to_end, commit_rate = bench_reliable()
    print(f"reliable pipeline (outbox → confirms → idempotent batch consumer of {BATCH}, PostgreSQL): "
          f"{end_to_end:,.0f} events/s end to end over {N_RELIABLE:,} events "
          f"(producer committed at {commit_rate:,.0f} events/s)")
    plain = bench_plain()
    print(f"nameko EventDispatcher → event_handler (no outbox, no inbox):             "
          f"{plain:,.0f} events/s over {N_PLAIN:,} events")
    return 0


if __name__ == "__main__":
    sys.exit(main())
