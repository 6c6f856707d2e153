"""RabbitMQ topology for consumers: queues, retry delays and dead letters.

    pont.events (topic) ──type──▶ <service>.<handler> ◀──queue name── pont.requeue (direct)
                                        │ handler failed, attempt n
                                        ▼
    pont.delay.<ms>ms (fanout) ─▶ queue with x-message-ttl=<ms>, dead-letters to pont.requeue
                                        │ attempts exhausted
                                        ▼
    pont.dead (direct) ──service──▶ <service>.dead-letters   (headers: queue, error, attempts)

Delay queues are shared by every consumer and hold messages of one delay only, so a long
delay never holds up a short one. Dead letters stay per service: a disclosure addressed
to one agency never lands on a queue another service reads.
"""
from __future__ import annotations

from kombu import Exchange, Queue, binding

from pont_shared.contract.envelope import DISCLOSURES_EXCHANGE, EVENTS_EXCHANGE

REQUEUE_EXCHANGE = "pont.requeue"
DEAD_EXCHANGE = "pont.dead"

events_exchange = Exchange(EVENTS_EXCHANGE, "topic", durable=True)
disclosures_exchange = Exchange(DISCLOSURES_EXCHANGE, "direct", durable=True)
requeue_exchange = Exchange(REQUEUE_EXCHANGE, "direct", durable=True)
dead_exchange = Exchange(DEAD_EXCHANGE, "direct", durable=True)

HEADER_ATTEMPT = "x-pont-attempt"
HEADER_OUTAGES = "x-pont-outages"  # times postponed for a database or broker outage: no budget spent
HEADER_QUEUE = "x-pont-queue"
HEADER_ERROR = "x-pont-error"
HEADER_FAILED_AT = "x-pont-failed-at"


def delay_name(seconds: float) -> str:
    return f"pont.delay.{int(round(seconds * 1000))}ms"


def delay_exchange(seconds: float) -> Exchange:
    return Exchange(delay_name(seconds), "fanout", durable=True)


def delay_queue(seconds: float) -> Queue:
    name = delay_name(seconds)
    return Queue(
        name, delay_exchange(seconds), durable=True,
        queue_arguments={"x-message-ttl": int(round(seconds * 1000)), "x-dead-letter-exchange": REQUEUE_EXCHANGE},
    )


def dead_letter_queue_name(service: str) -> str:
    return f"{service}.dead-letters"


def dead_letter_queue(service: str) -> Queue:
    return Queue(dead_letter_queue_name(service), dead_exchange, routing_key=service, durable=True)


def consumer_queue(name: str, exchange: Exchange, routing_key: str) -> Queue:
    """A durable consumer queue fed by its event binding and by its own retries."""
    return Queue(
        name,
        bindings=[binding(exchange, routing_key=routing_key), binding(requeue_exchange, routing_key=name)],
        durable=True,
    )


def declare_retry_topology(channel, service: str, delays) -> None:
    for exchange in (events_exchange, disclosures_exchange, requeue_exchange, dead_exchange):
        exchange(channel).declare()
    for seconds in delays:
        delay_exchange(seconds)(channel).declare()
        delay_queue(seconds)(channel).declare()
    dead_letter_queue(service)(channel).declare()
