"""RabbitMQ topology for consumers: queues, retry delays and dead letters.

    pont.events (topic) ──type──▶ <service>.<handler> ◀──queue name── pont.requeue.<service> (direct)
                                        │ handler failed, attempt n
                                        ▼
    pont.delay.<service>.<ms>ms (fanout) ─▶ queue with x-message-ttl=<ms>, dead-letters to pont.requeue.<service>
                                        │ attempts exhausted
                                        ▼
    pont.dead.<service> (direct) ──service──▶ <service>.dead-letters   (headers: queue, error, attempts)

Delay and requeue exchanges belong to one service each (its broker user alone may write to
them, see `pont_shared.operations.broker_access`), so no service can put a retry into another's
queues. A delay queue holds messages of one delay only, so a long delay never holds up a short
one. Dead letters stay per service: a disclosure addressed to one agency never lands on a
queue another service reads. Disclosures (`pont.disclosed`) are a topic exchange keyed by the
recipient organisation, so a topic permission confines an agency's bindings to its own key.

The shared exchanges (`pont.events`, `pont.disclosed`, and nameko's `nameko-rpc`) are made by
the broker's definitions, not by the services: declaring an exchange needs the configure
permission that would also let a user delete it, and no service's user has it on a shared
exchange. Services bind to them and publish to them without declaring them (`no_declare`),
after `ensure_shared` has checked that they exist (a passive declare needs no permission) —
and made any that does not, where the user may (an operator's user, or a development broker's
guest).

Every queue that holds work is a quorum queue (`QUORUM`): consumer queues, nameko's RPC request
queues (`rpc-<service>`), dead-letter queues and delay queues, so on a RabbitMQ cluster each is
replicated and survives the loss of a node. A delay queue dead-letters at least once
(`x-dead-letter-strategy`, which needs `x-overflow: reject-publish`): an expired retry is
removed only once the requeue exchange's queue has it. Replies are the exception: a caller's
reply queue is exclusive to its connection (a reply outliving its caller is useless). A broker
that still has classic queues of these names is converted by `pont_shared.operations.queues`.
"""
from __future__ import annotations

from amqp.exceptions import NotFound
from kombu import Exchange, Queue, binding

from pont_shared.contract.envelope import DISCLOSURES_EXCHANGE, EVENTS_EXCHANGE

RPC_EXCHANGE = "nameko-rpc"  # nameko's default, which Pont keeps
QUORUM = {"x-queue-type": "quorum"}

events_exchange = Exchange(EVENTS_EXCHANGE, "topic", durable=True, no_declare=True)
disclosures_exchange = Exchange(DISCLOSURES_EXCHANGE, "topic", durable=True, no_declare=True)
rpc_exchange = Exchange(RPC_EXCHANGE, "topic", durable=True, no_declare=True)
SHARED_EXCHANGES = {exchange.name: exchange for exchange in (events_exchange, disclosures_exchange, rpc_exchange)}


def ensure_shared(connection, names=tuple(SHARED_EXCHANGES)) -> None:
    """Check that each named shared exchange exists, on channels of `connection` (py-amqp's or
    kombu's); declare one that does not (refused, ACCESS_REFUSED, unless the user may)."""
    for name in names:
        exchange = SHARED_EXCHANGES[name]
        channel = connection.channel()
        try:
            channel.exchange_declare(name, exchange.type, passive=True)
        except NotFound:  # the broker closed that channel
            channel = connection.channel()
            channel.exchange_declare(name, exchange.type, durable=True, auto_delete=False)
        channel.close()

HEADER_ATTEMPT = "x-pont-attempt"
HEADER_OUTAGES = "x-pont-outages"  # times postponed for a database or broker outage: no budget spent
HEADER_QUEUE = "x-pont-queue"
HEADER_ERROR = "x-pont-error"
HEADER_FAILED_AT = "x-pont-failed-at"
# the broker-validated user that first published an event, carried round the service's own
# delay and requeue exchanges (only that service may write to them)
HEADER_PUBLISHER = "x-pont-publisher"


def requeue_name(service: str) -> str:
    return f"pont.requeue.{service}"


def requeue_exchange(service: str) -> Exchange:
    return Exchange(requeue_name(service), "direct", durable=True)


def delay_name(service: str, seconds: float) -> str:
    return f"pont.delay.{service}.{int(round(seconds * 1000))}ms"


def delay_exchange(service: str, seconds: float) -> Exchange:
    return Exchange(delay_name(service, seconds), "fanout", durable=True)


def delay_arguments(service: str, seconds: float) -> dict:
    return {**QUORUM, "x-message-ttl": int(round(seconds * 1000)), "x-dead-letter-exchange": requeue_name(service),
            "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}


def delay_queue(service: str, seconds: float) -> Queue:
    return Queue(delay_name(service, seconds), delay_exchange(service, seconds), durable=True,
                 queue_arguments=delay_arguments(service, seconds))


def dead_name(service: str) -> str:
    return f"pont.dead.{service}"


def dead_exchange(service: str) -> Exchange:
    return Exchange(dead_name(service), "direct", durable=True)


def dead_letter_queue_name(service: str) -> str:
    return f"{service}.dead-letters"


def dead_letter_queue(service: str) -> Queue:
    return Queue(dead_letter_queue_name(service), dead_exchange(service), routing_key=service, durable=True,
                 queue_arguments=QUORUM)


def consumer_queue(service: str, name: str, exchange: Exchange, routing_key: str) -> Queue:
    """A consumer queue fed by its event binding and by its own retries."""
    return Queue(
        name,
        bindings=[binding(exchange, routing_key=routing_key), binding(requeue_exchange(service), routing_key=name)],
        durable=True, queue_arguments=QUORUM,
    )


def rpc_queue(name: str, routing_key: str) -> Queue:
    """A service's RPC request queue (`rpc-<service>`, keyed `<service>.*`)."""
    return Queue(name, rpc_exchange, routing_key=routing_key, durable=True, queue_arguments=QUORUM)


def reply_queue(name: str, routing_key: str, arguments: dict) -> Queue:
    """A caller's reply queue: its connection's alone, gone with it."""
    return Queue(name, rpc_exchange, routing_key=routing_key, exclusive=True, queue_arguments=arguments)


def own_topology(service: str, delays) -> tuple[list[str], list[str]]:
    """(queues, exchanges) a service's retries declare (`declare_retry_topology`): its own, no other's."""
    queues = [delay_name(service, seconds) for seconds in delays] + [dead_letter_queue_name(service)]
    return queues, [requeue_name(service), dead_name(service), *(delay_name(service, s) for s in delays)]


def declare_retry_topology(channel, service: str, delays) -> None:
    for exchange in (requeue_exchange(service), dead_exchange(service)):
        exchange(channel).declare()
    for seconds in delays:
        delay_exchange(service, seconds)(channel).declare()
        delay_queue(service, seconds)(channel).declare()
    dead_letter_queue(service)(channel).declare()
