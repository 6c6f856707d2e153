"""A producer and a consumer service used to prove the shared mechanisms end to end."""
from __future__ import annotations

from typing import ClassVar

import eventlet
from sqlalchemy import Column, Integer, MetaData, String, Table, insert
from sqlalchemy.exc import OperationalError

from pont_shared.contract.envelope import Payload
from pont_shared.messaging.consumer import handles
from pont_shared.messaging.db import define_messaging_tables
from pont_shared.messaging.dependencies import UnitOfWorkProvider
from pont_shared.operations.ops import OpsEndpoints


class Ping(Payload):
    TYPE: ClassVar[str] = "pont.test.ping.v1"
    run: str
    n: int


metadata = MetaData()
tables = define_messaging_tables(metadata)
effects = Table(
    "effects", metadata,
    Column("event_id", String(36), primary_key=True),
    Column("run", String(40), nullable=False, index=True),
    Column("n", Integer, nullable=False),
)

# Runs whose handling fails, and when each attempt happened (set by tests).
FAILING_RUNS: set[str] = set()
ATTEMPTS: dict[str, list[float]] = {}
# Runs that meet an unreachable database this many more times (set by tests).
OUTAGE_RUNS: dict[str, int] = {}


class PingConsumer(OpsEndpoints):
    """Records each ping in `effects`; fails for runs listed in FAILING_RUNS."""

    name = "ping_consumer"
    uow = UnitOfWorkProvider(metadata, tables)

    @handles(Ping)
    def on_ping(self, event):
        import time

        ping = event.payload(Ping)
        ATTEMPTS.setdefault(event.id, []).append(time.monotonic())
        if OUTAGE_RUNS.get(ping.run, 0) > 0:
            OUTAGE_RUNS[ping.run] -= 1
            raise OperationalError("SELECT 1", {}, ConnectionRefusedError(111, "Connection refused"))
        with self.uow as uow:
            if ping.n < 0:  # a slow handler: -n tenths of a second of work
                eventlet.sleep(-ping.n / 10)
            uow.session.execute(insert(effects).values(event_id=event.id, run=ping.run, n=ping.n))
            if ping.run in FAILING_RUNS:
                raise RuntimeError(f"handler fault for run {ping.run}")
            uow.commit()


class PingBatchConsumer(OpsEndpoints):
    """The same effect, handled in batches of up to 50 events per transaction."""

    name = "ping_batch_consumer"
    uow = UnitOfWorkProvider(metadata, tables)

    @handles(Ping, batch_size=50)
    def on_pings(self, events):
        with self.uow as uow:
            fresh = uow.fresh(events)
            for event in fresh:
                ping = event.payload(Ping)
                if ping.run in FAILING_RUNS:
                    raise RuntimeError(f"handler fault for run {ping.run}")
                uow.session.execute(insert(effects).values(event_id=event.id, run=ping.run, n=ping.n))
            uow.commit()
