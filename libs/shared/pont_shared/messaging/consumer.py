"""`@handles(EventModel)`: the idempotent, retrying event entrypoint.

Replaces nameko's `event_handler`, which acknowledges a failed handler's message away.
Here a message is acknowledged only when the handler returned (its unit of work has
committed) or the event was a duplicate; a failure is re-published to a delay queue with
its attempt count, and after the last attempt to the service's dead-letter queue with the
error. The original is acknowledged only after that re-publish is confirmed, so a crash
at any point leaves the message on the broker.

Losing the database or the broker is not the handler's failure: such an error (`transient`)
sends the message round a delay queue with its attempt count unchanged, waiting longer each
time, for as long as the outage lasts; only the handler's own failures spend the budget.
If even that re-publish fails (the broker is gone), the message is left unacknowledged and
the broker delivers it again once the consumer has reconnected.

Every event must come from the broker user of the service its `source` names (the
`user_id` RabbitMQ has checked against the publisher's connection), and an agency's event
from that organisation's agency_link user: anything else is dead-lettered unhandled as
"publisher mismatch". A process whose every service shares one broker user (tests, a
single-user broker) accepts that user too.
"""
from __future__ import annotations

from datetime import UTC, datetime
from functools import partial

import amqp
import eventlet
import kombu.exceptions
import sqlalchemy.exc
import structlog
from eventlet.semaphore import Semaphore
from kombu import Connection
from nameko.amqp.publish import Publisher
from nameko.messaging import Consumer, QueueConsumer
from pydantic import ValidationError

from pont_shared import metrics
from pont_shared.config import safe_name
from pont_shared.contract.envelope import Envelope, Payload
from pont_shared.logs import describe
from pont_shared.messaging import topology
from pont_shared.messaging.acks import AckWindow
from pont_shared.messaging.broker import TracksConsuming, broker_user
from pont_shared.messaging.uow import AlreadyProcessed

log = structlog.get_logger(__name__)

BROKER_ERRORS = (OSError, amqp.exceptions.ConnectionError, kombu.exceptions.OperationalError)
_TRANSIENT = (*BROKER_ERRORS, sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError,
              sqlalchemy.exc.DisconnectionError, sqlalchemy.exc.TimeoutError)


def transient(exc: BaseException) -> bool:
    """An error of the database or the broker being unreachable or busy, not of the handler."""
    return isinstance(exc, _TRANSIENT)


def queue_name_of(service: str, method_name: str) -> str:
    """The durable queue of a service's `@handles` method."""
    return f"{service}.{method_name}"


class EventQueueConsumer(TracksConsuming, QueueConsumer):
    """nameko's queue consumer, for the `@handles` entrypoints only, on a connection of
    their own. It hands each entrypoint the raw message (the envelope is parsed once, by
    the entrypoint) and acknowledges with as few frames as is safe (`AckWindow`)."""

    def __init__(self):
        super().__init__()
        self._channel = None
        self._window: AckWindow | None = None
        # frames leave in the order the window decided them: a multiple ack overtaking a single
        # one it covers would make the broker refuse the single one and close the channel
        self._acking = Semaphore()

    def get_consumers(self, consumer_cls, channel):
        """kombu's callback after every (re)connection: deliveries start again on `channel`."""
        self._channel = channel
        self._window = AckWindow(waiting_limit=self.prefetch_count // 2)
        for provider in self._providers:
            consumer = consumer_cls(queues=[provider.queue], on_message=partial(self._deliver, provider))
            consumer.qos(prefetch_count=self.prefetch_count)
            self._consumers[provider] = consumer
        return self._consumers.values()

    def _deliver(self, provider, message) -> None:
        self._window.delivered(message.delivery_tag)
        provider.handle_message(message.body, message)

    def ack_message(self, message):
        self.ack_messages([message])

    def ack_messages(self, messages) -> None:
        """Acknowledge handled messages; they all came on one channel."""
        channel = messages[0].channel
        with self._acking:
            if not self._current(channel):
                return
            for tag, multiple in self._window.finished(message.delivery_tag for message in messages):
                try:
                    channel.basic_ack(tag, multiple=multiple)
                except (amqp.exceptions.ConnectionError, OSError):
                    return  # the connection closed under us: the broker takes the messages back

    def requeue_message(self, message):
        with self._acking:
            if not self._current(message.channel):
                return
            self._window.requeued(message.delivery_tag)
            try:
                message.requeue()
            except (amqp.exceptions.ConnectionError, OSError):
                return

    def _current(self, channel) -> bool:
        """False for a delivery on a connection since lost: the broker has already taken it back."""
        return channel is self._channel and bool(channel.connection)


class EventConsumer(Consumer):
    """Consumes one event type from its own durable queue, `<service>.<method>`.

    With `batch_size > 1` the method receives a list of envelopes (up to `batch_size`,
    gathered for at most `linger` seconds) and handles them in one unit of work — one
    commit instead of one per event, for high-volume streams. `uow.fresh(events)` gives the
    ones not yet handled. If the batch fails, each event is retried on its own, so one bad
    event cannot hold up or take down the others.
    """

    queue_consumer = EventQueueConsumer()

    def __init__(self, event: type[Payload], *, routing_key: str | None = None,
                 batch_size: int = 1, linger: float = 0.01, **kwargs):
        self.event_model = event
        self._routing_key_template = routing_key
        self.batch_size = batch_size
        self.linger = linger
        self._buffer: list = []
        self._flush_timer = None
        kwargs.setdefault("expected_exceptions", AlreadyProcessed)
        super().__init__(queue=None, **kwargs)

    def setup(self):
        settings = self.container.config["PONT_SETTINGS"]
        self.service = self.container.service_name
        self.delays = settings.retry_delays
        self.queue_name = queue_name_of(self.service, self.method_name)
        # the routing key may name a setting, e.g. "{org}" for an agency's own disclosures
        routing_key = self.routing_key_for(self.container.config)
        exchange = topology.SHARED_EXCHANGES[self.event_model.EXCHANGE]
        self.queue = topology.consumer_queue(self.service, self.queue_name, exchange, routing_key)
        self.user = broker_user(settings.amqp_uri)
        self.publisher = Publisher(settings.amqp_uri, use_confirms=True, delivery_mode=2, user_id=self.user)
        with Connection(settings.amqp_uri) as conn:
            topology.ensure_shared(conn, [exchange.name])
            topology.declare_retry_topology(conn.default_channel, self.service, self.delays)
        super().setup()

    def routing_key_for(self, config: dict) -> str:
        """The key this consumer's queue binds with (its broker user's topic permission allows it)."""
        return (self._routing_key_template or self.event_model.TYPE).format(**config)

    def handle_message(self, body: bytes, message):
        try:
            envelope = Envelope.model_validate_json(body)
        except ValidationError as exc:
            # malformed: no retry will mend it
            self._dead_letter(message, attempt=0, error=f"malformed envelope: {type(exc).__name__}")
            return
        mismatch = self._publisher_mismatch(envelope, message)
        if mismatch:
            self._dead_letter(message, attempt=0, error=f"publisher mismatch: {mismatch}")
            return
        if self.batch_size > 1:
            self._buffer.append((envelope, message))
            if len(self._buffer) >= self.batch_size:
                self._flush()
            elif self._flush_timer is None:
                self._flush_timer = eventlet.spawn_after(self.linger, self._flush)
            return
        self._spawn_one(envelope, message)

    def publisher_of(self, message) -> str | None:
        """The broker-checked user that published `message`; for a retry (which this service's
        own user re-published), the one recorded when it first arrived."""
        user = (message.properties or {}).get("user_id")
        if user == self.user and message.delivery_info.get("exchange") == topology.requeue_name(self.service):
            return (message.headers or {}).get(topology.HEADER_PUBLISHER, user)
        return user

    def _publisher_mismatch(self, envelope: Envelope, message) -> str | None:
        """Why `envelope` may not have come from its publisher (no personal data), or None."""
        user = self.publisher_of(message)
        if user is None:
            return f"no user_id on an event from {envelope.source}"
        if user == self.user:  # this service's own user: every service shares it, or it is our own event
            return None
        if envelope.source != f"/pont/{user}":
            return f"user {user!r} may not publish events from {envelope.source}"
        if envelope.type.startswith("pont.agency."):
            if user != f"agency_link_{safe_name(str(envelope.data.get('org')))}":
                return f"user {user!r} may not publish an agency event for another organisation"
        return None

    def _spawn_one(self, envelope: Envelope, message) -> None:
        args = ([envelope],) if self.batch_size > 1 else (envelope,)
        self.container.spawn_worker(
            self, args, {}, context_data={"correlation_id": envelope.correlationid},
            handle_result=partial(self.handle_result, message),
        )

    def _flush(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        batch, self._buffer = self._buffer, []
        if batch:
            self.container.spawn_worker(
                self, ([envelope for envelope, _ in batch],), {},
                handle_result=partial(self._handle_batch_result, batch),
            )

    def _handle_batch_result(self, batch, worker_ctx, result=None, exc_info=None):
        if exc_info is None:
            self.queue_consumer.ack_messages([message for _envelope, message in batch])
            metrics.EVENTS_HANDLED.labels(self.service, self.queue_name, "handled").inc(len(batch))
            return result, exc_info
        log.warning("event.batch_failed", queue=self.queue_name, size=len(batch), error=describe(exc_info[1]))
        for envelope, message in batch:  # isolate the culprit: each event on its own
            self._spawn_one(envelope, message)
        return result, None

    def handle_result(self, message, worker_ctx, result=None, exc_info=None):
        if exc_info is None:
            metrics.EVENTS_HANDLED.labels(self.service, self.queue_name, "handled").inc()
        elif isinstance(exc_info[1], AlreadyProcessed):
            metrics.EVENTS_HANDLED.labels(self.service, self.queue_name, "duplicate").inc()
            exc_info = None
        else:
            self._retry_or_dead_letter(message, exc_info)
            return result, exc_info
        self.queue_consumer.ack_message(message)
        return result, exc_info

    def _retry_or_dead_letter(self, message, exc_info) -> None:
        headers = message.headers or {}
        attempt = int(headers.get(topology.HEADER_ATTEMPT, 0))
        error = describe(exc_info[1])
        if transient(exc_info[1]):
            outages = int(headers.get(topology.HEADER_OUTAGES, 0))
            delay = self.delays[min(outages, len(self.delays) - 1)] if self.delays else 1.0
            self._republish(message, topology.delay_exchange(self.service, delay), self.queue_name,
                            {topology.HEADER_ATTEMPT: attempt, topology.HEADER_OUTAGES: outages + 1})
            metrics.EVENTS_HANDLED.labels(self.service, self.queue_name, "postponed").inc()
            log.warning("event.postponed", queue=self.queue_name, delay_s=delay, error=error)
        elif attempt < len(self.delays):
            delay = self.delays[attempt]
            self._republish(message, topology.delay_exchange(self.service, delay), self.queue_name,
                            {topology.HEADER_ATTEMPT: attempt + 1})
            metrics.EVENTS_HANDLED.labels(self.service, self.queue_name, "retried").inc()
            log.warning("event.retry_scheduled", queue=self.queue_name, attempt=attempt + 1,
                        delay_s=delay, error=error)
        else:
            self._dead_letter(message, attempt=attempt, error=error)

    def _dead_letter(self, message, *, attempt: int, error: str) -> None:
        headers = {
            topology.HEADER_QUEUE: self.queue_name,
            topology.HEADER_ERROR: error[:2000],
            topology.HEADER_ATTEMPT: attempt,
            topology.HEADER_FAILED_AT: datetime.now(UTC).isoformat(),
        }
        if self._republish(message, topology.dead_exchange(self.service), self.service, headers):
            metrics.DEAD_LETTERS.labels(self.service, self.queue_name).inc()
            metrics.EVENTS_HANDLED.labels(self.service, self.queue_name, "dead_lettered").inc()
            log.error("event.dead_lettered", queue=self.queue_name, attempts=attempt, error=error)

    def _republish(self, message, exchange, routing_key: str, headers: dict) -> bool:
        """Publish (confirmed) a copy of `message`, then acknowledge the original. If the broker
        cannot take the copy, give the original back to it instead: nothing is lost either way."""
        publisher = self.publisher_of(message)
        if publisher is not None:
            headers = {**headers, topology.HEADER_PUBLISHER: publisher}
        try:
            self.publisher.publish(message.body, exchange=exchange, routing_key=routing_key, headers=headers,
                                   content_type=message.content_type or "application/json", serializer=None)
        except BROKER_ERRORS as exc:
            log.warning("event.republish_failed", queue=self.queue_name, error=describe(exc))
            self.queue_consumer.requeue_message(message)
            return False
        self.queue_consumer.ack_message(message)
        return True


handles = EventConsumer.decorator
