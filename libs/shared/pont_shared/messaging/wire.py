"""Plain AMQP clients (pika) for the places nameko is not the right tool.

`WireObserver` is the tests' independent witness: it binds its own queue and reports
what really crossed the broker. `InboxClient` lets an agency's own system — not a nameko
service — receive its events with the same inbox semantics as Pont's services.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import pika
from sqlalchemy.engine import Connection, Engine

from pont_shared.contract.envelope import DISCLOSURES_EXCHANGE, EVENTS_EXCHANGE, Envelope
from pont_shared.messaging import topology
from pont_shared.messaging.db import MessagingTables
from pont_shared.messaging.uow import InboxKey, claim


def _ensure_shared(connection: pika.BlockingConnection) -> None:
    """pika's `topology.ensure_shared`: the events and disclosures exchanges exist (checked passively,
    which needs no configure permission), declared if they did not."""
    for name in (EVENTS_EXCHANGE, DISCLOSURES_EXCHANGE):
        channel = connection.channel()
        try:
            channel.exchange_declare(name, passive=True)
        except pika.exceptions.ChannelClosedByBroker:  # 404, which closed that channel
            channel = connection.channel()
            channel.exchange_declare(name, "topic", durable=True)
        channel.close()


class WireObserver:
    """Collects every event published to the given (exchange, routing key) bindings."""

    def __init__(self, amqp_uri: str, bindings: Iterable[tuple[str, str]] = ((EVENTS_EXCHANGE, "#"),)):
        self._conn = pika.BlockingConnection(pika.URLParameters(amqp_uri))
        _ensure_shared(self._conn)
        self._channel = self._conn.channel()
        self._queue = self._channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
        for exchange, routing_key in bindings:
            self._channel.queue_bind(self._queue, exchange, routing_key=routing_key)
        self.seen: list[Envelope] = []
        self.raw: list[bytes] = []

    def drain(self) -> None:
        while True:
            method, _props, body = self._channel.basic_get(self._queue, auto_ack=True)
            if method is None:
                return
            self.raw.append(body)
            self.seen.append(Envelope.model_validate_json(body))

    def wait_for(self, predicate: Callable[[list[Envelope]], bool], timeout: float = 5.0) -> list[Envelope]:
        """Wait until `predicate(seen)` holds; raise TimeoutError at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            self.drain()
            if predicate(self.seen):
                return self.seen
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met within {timeout}s; saw {len(self.seen)} events")
            self._conn.sleep(0.02)

    def of_type(self, event_type: str) -> list[Envelope]:
        self.drain()
        return [e for e in self.seen if e.type == event_type]

    def close(self) -> None:
        if self._conn.is_open:
            self._conn.close()


class InboxClient:
    """Consume a queue; apply each event once, in a transaction with its inbox record.

    The handler gets the open database connection and the envelope; its effect and the
    inbox row commit together, and the message is acknowledged only after the commit.
    A handler that raises rejects the message to the consumer's dead-letter queue.
    """

    def __init__(self, amqp_uri: str, engine: Engine, tables: MessagingTables, *, consumer: str,
                 bindings: Iterable[tuple[str, str]], prefetch: int = 100):
        self.engine = engine
        self.tables = tables
        self.consumer = consumer
        self._conn = pika.BlockingConnection(pika.URLParameters(amqp_uri))
        _ensure_shared(self._conn)
        self._channel = self._conn.channel()
        dead = topology.dead_name(consumer)  # the consumer's own, as a Pont service's (broker_access)
        self._channel.exchange_declare(dead, "direct", durable=True)
        self._channel.queue_declare(topology.dead_letter_queue_name(consumer), durable=True, arguments=topology.QUORUM)
        self._channel.queue_bind(topology.dead_letter_queue_name(consumer), dead, consumer)
        self._channel.queue_declare(consumer, durable=True, arguments={
            **topology.QUORUM, "x-dead-letter-exchange": dead, "x-dead-letter-routing-key": consumer})
        for exchange, routing_key in bindings:
            self._channel.queue_bind(consumer, exchange, routing_key=routing_key)
        self._channel.basic_qos(prefetch_count=prefetch)

    def run(self, handler: Callable[[Connection, Envelope], None], *, idle_timeout: float | None = None) -> int:
        """Consume until the queue stays empty for `idle_timeout` seconds; return events applied."""
        applied = 0
        for method, _props, body in self._channel.consume(self.consumer, inactivity_timeout=idle_timeout):
            if method is None:
                break
            try:
                envelope = Envelope.model_validate_json(body)
                applied += self._apply(handler, envelope)
            except Exception:
                self._channel.basic_nack(method.delivery_tag, requeue=False)
                continue
            self._channel.basic_ack(method.delivery_tag)
        self._channel.cancel()
        return applied

    def _apply(self, handler, envelope: Envelope) -> int:
        key = InboxKey(self.consumer, envelope)
        with self.engine.begin() as db:
            if not claim(db, self.tables, key):
                return 0
            handler(db, envelope)
        return 1

    def close(self) -> None:
        if self._conn.is_open:
            self._conn.close()
