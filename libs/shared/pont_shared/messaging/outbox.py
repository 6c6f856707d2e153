"""Transactional outbox: events commit with the state change, a relay publishes them.

`write_outbox` runs inside the caller's transaction. After the commit, the unit of work
hands the rows it wrote to its process's `OutboxRelay`, which publishes them without
reading them back, a whole batch with publisher confirms pipelined (one wait per batch,
not per event), and then marks the confirmed rows sent. Rows no relay was handed (a crash
after the commit, a broker outage, another writer) the relay finds by polling the table,
and publishes them the same way, marking them sent in the transaction that locked them. A
crash between publish and mark re-publishes: delivery is at least once, and consumers
de-duplicate (inbox). A published row is deleted once it is older than
the retention period (`PONT_OUTBOX_RETENTION_HOURS`): a disclosure's body carries personal
details, and the outbox is not where a service keeps them.
"""
from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import amqp
import structlog
from sqlalchemy import bindparam, delete, func, or_, select, text, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.schema import Table

from pont_shared import metrics
from pont_shared.contract.envelope import DISCLOSURES_EXCHANGE, Envelope
from pont_shared.messaging import topology
from pont_shared.messaging.broker import BROKER_ERRORS, HEARTBEAT_SECONDS, broker_user, connect_amqp
from pont_shared.messaging.db import insert_rows

log = structlog.get_logger(__name__)

PERSISTENT = 2
TICK_SECONDS = 1.0  # how often an idle relay reads the broker's heartbeats and sends its own
SWEEP_BATCH = 5000  # published rows deleted per statement by the retention sweep


# A relay polls only for rows committed before it started, or at least this long ago: the younger
# ones are the committing process's relay's, handed to it in memory (a replica's, its own relay's).
HANDED_SECONDS = 2.0
HANDED_LIMIT = 50_000  # rows a relay holds in memory; a commit beyond them is left to the poll


class PublishNotConfirmed(Exception):
    """The broker nacked, or did not confirm in time, part of a batch."""


class OutboxRow(NamedTuple):
    """An outbox row as the relay publishes it."""

    id: int
    event_id: str
    event_type: str
    exchange: str
    routing_key: str
    body: str
    attempts: int = 0


def write_outbox(conn: Connection, outbox: Table, items: Iterable[tuple[Envelope, str, str]]) -> list[OutboxRow]:
    """Insert (envelope, exchange, routing_key) rows in the caller's transaction; the rows written."""
    rows = [
        {
            "event_id": envelope.id,
            "event_type": envelope.type,
            "exchange": exchange,
            "routing_key": routing_key,
            "body": envelope.model_dump_json(),
            "created_at": datetime.now(UTC),
        }
        for envelope, exchange, routing_key in items
    ]
    ids = dict(insert_rows(conn, outbox, rows, returning=("event_id", "id")))
    return [OutboxRow(ids[row["event_id"]], row["event_id"], row["event_type"], row["exchange"],
                      row["routing_key"], row["body"]) for row in rows]


def _walk_the_unsent_index(db: Connection) -> None:
    """Have PostgreSQL read unsent rows by walking `ix_outbox_unsent`, for this transaction.

    Rows marked sent leave dead entries in that index until a vacuum. An index scan marks
    them dead as it passes and skips them after; a bitmap scan cannot, and visits the heap
    page of every one, every time. Without fresh statistics (a new or busy outbox, or no
    autovacuum) the planner picks the bitmap scan, and each relay poll then costs time in
    proportion to every event ever sent — measured: 565 ms against 2 ms at 130,000 rows.
    """
    if db.dialect.name == "postgresql":
        db.execute(text("SET LOCAL enable_bitmapscan = off"))


class PublisherConnection(amqp.Connection):
    """py-amqp's connection, without the broker's `connection.blocked` notification.

    With that capability negotiated, `basic_publish` reads the socket before every publish, to
    see a notification: a system call an event (6% of the producing process's time in
    `make bench-events`). The relay reads the broker's frames after each batch instead, and a
    blocked broker (RabbitMQ blocks a publisher whether or not it asked to be told) shows as
    a publish or a confirm that times out.
    """

    negotiate_capabilities = {**amqp.Connection.negotiate_capabilities, "connection.blocked": False}


class OutboxRelay:
    """Publishes a service's unsent outbox rows; framework-free, driven by `run`.

    One batch at a time, without a fixed wait: when nothing is in flight the relay publishes
    what commits hand it (`wake`) at once; rows handed while a batch awaits its confirms
    wait, and the next batch, started as soon as this one is confirmed, takes all of them (up
    to `batch_size`). A quiet service's event leaves at once; a busy service's batches grow
    with its load, as group commit does. Every `poll_seconds`, and whenever nothing is
    handed, the relay also polls the table for unsent rows committed more than
    `HANDED_SECONDS` ago: those no relay was handed, or whose publishing failed.
    """

    def __init__(self, engine: Engine, outbox: Table, amqp_uri: str, service: str, *,
                 batch_size: int = 500, poll_seconds: float = 0.5, confirm_timeout: float = 10.0,
                 heartbeat: int = HEARTBEAT_SECONDS, retention: timedelta = timedelta(hours=24)):
        self.engine = engine
        self.retention = retention
        self.sweep_seconds = min(max(retention.total_seconds() / 4, TICK_SECONDS), 300.0)
        self._swept_at = 0.0
        self.outbox = outbox
        self._mark_sent = update(outbox).where(outbox.c.id.in_(bindparam("ids", expanding=True)))
        self.amqp_uri = amqp_uri
        self.service = service
        self.user = broker_user(amqp_uri)  # each message's user_id, which RabbitMQ checks and consumers trust
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.confirm_timeout = confirm_timeout
        self.heartbeat = heartbeat
        self._conn: amqp.Connection | None = None
        self._channel = None
        self._next_tag = 1
        self._unconfirmed: set[int] = set()
        self._declared: set[str] = set()   # exchanges known to exist, on the current connection
        self._nacked: set[int] = set()
        self._returned: set[str] = set()
        self._handed: deque[OutboxRow] = deque()
        # rows committed before the relay existed were handed to no relay: the poll takes them at
        # once; a later commit may have handed its rows to this one (`wake`), even before `run`
        self._started_at = datetime.now(UTC)
        self._polled_at = 0.0
        self._wakeup = threading.Event()
        self._stopping = threading.Event()
        self._measured_at = 0.0

    # -- lifecycle -----------------------------------------------------------------

    def wake(self, rows: Sequence[OutboxRow] = ()) -> None:
        """Called after a commit that wrote `rows`: publish them soon, without reading them back."""
        if len(self._handed) + len(rows) <= HANDED_LIMIT:
            self._handed.extend(rows)
        self._wakeup.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wakeup.set()

    def run(self) -> None:
        """Publish until stopped, reconnecting with backoff after broker or database loss."""
        backoff = 0.1
        while not self._stopping.is_set():
            try:
                self._measure_backlog()  # before publishing: the gauges must move during an outage too
                self._sweep_when_due()
                self._wakeup.clear()  # a commit from here on is one this batch may miss: it wakes the next
                published = self.publish_next()
                backoff = 0.1
                self._keep_alive()
                if published < self.batch_size:
                    self._wait_for_commits()
            except (PublishNotConfirmed, *BROKER_ERRORS) as exc:
                metrics.PUBLISH_FAILURES.labels(self.service).inc()
                log.warning("outbox.publish_failed", error=type(exc).__name__, retry_in=backoff)
                self._disconnect()
                self._handed.clear()  # still unsent in the table: the poll takes them
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 5.0)
            except SQLAlchemyError as exc:
                log.warning("outbox.database_unavailable", error=type(exc).__name__, retry_in=backoff)
                self._handed.clear()
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 5.0)
        self._disconnect()

    def _wait_for_commits(self) -> None:
        """Until a commit wakes the relay (at once, if one did while the last batch was out), or
        the next poll is due; keeping the broker connection alive meanwhile."""
        deadline = self._polled_at + self.poll_seconds
        while not self._wakeup.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._wakeup.wait(min(remaining, TICK_SECONDS))
            self._keep_alive()

    def _keep_alive(self) -> None:
        """Read what the broker sent unasked (heartbeats, a close) and send a heartbeat when due.
        py-amqp's `heartbeat_tick` counts the frames read and written either way."""
        if self._conn is None:
            return
        with contextlib.suppress(socket.timeout):
            self._conn.drain_events(timeout=0)
        self._conn.heartbeat_tick()

    # -- retention -----------------------------------------------------------------

    def _sweep_when_due(self) -> None:
        if time.monotonic() - self._swept_at >= self.sweep_seconds:
            self.forget_published()
            self._swept_at = time.monotonic()

    def forget_published(self, now: datetime | None = None) -> int:
        """Delete the rows published longer ago than the retention period; how many. Unsent rows
        are never touched, however old (they are the relay's backlog)."""
        cutoff = (now or datetime.now(UTC)) - self.retention
        outbox, deleted = self.outbox, 0
        while True:
            with self.engine.begin() as db:
                batch = select(outbox.c.id).where(outbox.c.sent_at.is_not(None), outbox.c.sent_at < cutoff) \
                    .order_by(outbox.c.id).limit(SWEEP_BATCH).scalar_subquery()
                count = db.execute(delete(outbox).where(outbox.c.id.in_(batch))).rowcount
            deleted += count
            if count < SWEEP_BATCH:
                break
        if deleted:
            log.info("outbox.published_rows_deleted", count=deleted,
                     retention_hours=self.retention.total_seconds() / 3600)
        return deleted

    # -- one batch -----------------------------------------------------------------

    def publish_next(self) -> int:
        """Publish one batch: of the rows commits handed over, or, when none wait or a poll is
        due, of those the table holds unsent. How many were published (confirmed, or returned
        as unroutable and rescheduled)."""
        if self._handed and time.monotonic() - self._polled_at < self.poll_seconds:
            return self.publish_handed()
        self._polled_at = time.monotonic()
        return self.publish_pending() or self.publish_handed()

    def publish_handed(self) -> int:
        """Publish up to a batch of the rows commits handed over, then mark them sent. They were
        never locked: a poll leaves them alone for `HANDED_SECONDS`, and should one outlast that
        (a stalled broker) and be polled too, it is published twice, which consumers absorb."""
        rows = [self._handed.popleft() for _ in range(min(self.batch_size, len(self._handed)))]
        if not rows:
            return 0
        returned = self._publish_confirmed(rows)
        with self.engine.begin() as db:
            self._mark(db, rows, returned)
        return len(rows)

    def publish_pending(self) -> int:
        """Publish one batch of the rows the table holds unsent, committed before this relay
        started or at least `HANDED_SECONDS` ago; locked while they are published and marked."""
        now = datetime.now(UTC)
        outbox = self.outbox
        committed_before = max(now - timedelta(seconds=HANDED_SECONDS), self._started_at)
        with self.engine.begin() as db:
            query = (
                select(outbox.c.id, outbox.c.event_id, outbox.c.event_type, outbox.c.exchange,
                       outbox.c.routing_key, outbox.c.body, outbox.c.attempts)
                .where(outbox.c.sent_at.is_(None), outbox.c.created_at <= committed_before,
                       or_(outbox.c.next_attempt_at.is_(None), outbox.c.next_attempt_at <= now))
                .order_by(outbox.c.id)
                .limit(self.batch_size)
            )
            if db.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            _walk_the_unsent_index(db)
            rows = db.execute(query).all()
            if not rows:
                return 0
            self._mark(db, rows, self._publish_confirmed(rows))
        return len(rows)

    def _mark(self, db: Connection, rows, returned: set[str]) -> None:
        """Mark the confirmed rows sent; put off the ones returned unroutable, for longer each time."""
        now, outbox = datetime.now(UTC), self.outbox
        delivered = [row.id for row in rows if row.event_id not in returned]
        if delivered:
            db.execute(self._mark_sent, {"ids": delivered, "sent_at": now})
        for row in rows:
            if row.event_id in returned:
                delay = min(2 ** row.attempts, 300)
                db.execute(update(outbox).where(outbox.c.id == row.id).values(
                    attempts=row.attempts + 1, next_attempt_at=now + timedelta(seconds=delay)))
        metrics.OUTBOX_PUBLISHED.labels(self.service).inc(len(delivered))
        if returned:
            metrics.OUTBOX_UNROUTABLE.labels(self.service).inc(len(returned))
            log.warning("outbox.unroutable", count=len(returned))

    def _publish_confirmed(self, rows) -> set[str]:
        """Publish rows and wait for every confirm; return the event ids the broker returned
        as unroutable (a disclosure must reach a queue: it is published `mandatory`).

        Without `confirm_publish` on the connection, py-amqp's `basic_publish` writes and
        returns: the whole batch is on its way before the first confirm is awaited.
        """
        channel = self._ensure_channel()
        self._nacked, self._returned = set(), set()
        # only the exchanges it publishes to, which it may not declare (topology.ensure_shared)
        unchecked = {row.exchange for row in rows} - self._declared
        topology.ensure_shared(self._conn, sorted(unchecked))
        self._declared |= unchecked
        # each write is bounded too: a broker that stops reading (blocked) fails the batch, and
        # frees its rows, rather than holding them until it reads again
        for row in rows:
            message = amqp.Message(
                row.body.encode("utf-8"), content_type="application/json", content_encoding="utf-8",
                delivery_mode=PERSISTENT, message_id=row.event_id, type=row.event_type,
                user_id=self.user)
            channel.basic_publish(message, exchange=row.exchange, routing_key=row.routing_key,
                                  mandatory=row.exchange == DISCLOSURES_EXCHANGE, timeout=self.confirm_timeout)
            self._unconfirmed.add(self._next_tag)
            self._next_tag += 1
        self._await_confirms(time.monotonic() + self.confirm_timeout)
        if self._nacked:
            raise PublishNotConfirmed(f"{len(self._nacked)} publishes nacked")
        return self._returned

    def _await_confirms(self, deadline: float) -> None:
        """Read the broker's frames until every publish is confirmed, or `deadline` passes.
        py-amqp hands acks, nacks and returns to the channel's `events` callbacks below."""
        while self._unconfirmed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PublishNotConfirmed(f"{len(self._unconfirmed)} publishes unconfirmed")
            with contextlib.suppress(socket.timeout):
                self._conn.drain_events(timeout=remaining)

    def _on_return(self, _exc, _exchange, _routing_key, message) -> None:
        self._returned.add(message.properties.get("message_id"))

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        if multiple:
            self._unconfirmed = {tag for tag in self._unconfirmed if tag > delivery_tag}
        else:
            self._unconfirmed.discard(delivery_tag)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        done = {t for t in self._unconfirmed if t <= delivery_tag} if multiple else {delivery_tag}
        self._nacked |= done
        self._unconfirmed -= done

    # -- connection ----------------------------------------------------------------

    def _ensure_channel(self):
        if self._channel is None:
            self._conn = connect_amqp(self.amqp_uri, heartbeat=self.heartbeat, connection_class=PublisherConnection)
            channel = self._conn.channel()
            self._declared = set()
            channel.confirm_select()
            channel.events["basic_ack"].add(self._on_ack)
            channel.events["basic_nack"].add(self._on_nack)
            channel.events["basic_return"].add(self._on_return)
            self._channel, self._next_tag = channel, 1
            self._unconfirmed.clear()
        return self._channel

    def _disconnect(self) -> None:
        conn, self._conn, self._channel = self._conn, None, None
        self._unconfirmed.clear()
        if conn is not None:
            with contextlib.suppress(Exception):  # a dead socket has nothing left to close
                conn.collect()

    def _measure_backlog(self) -> None:
        now = time.monotonic()
        if now - self._measured_at < 1.0:
            return
        self._measured_at = now
        with self.engine.begin() as db:
            _walk_the_unsent_index(db)
            count, oldest = db.execute(
                select(func.count(), func.min(self.outbox.c.created_at)).where(self.outbox.c.sent_at.is_(None))
            ).one()
        metrics.OUTBOX_BACKLOG.labels(self.service).set(count)
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        age = (datetime.now(UTC) - oldest).total_seconds() if oldest else 0.0
        metrics.OUTBOX_OLDEST_AGE.labels(self.service).set(age)
