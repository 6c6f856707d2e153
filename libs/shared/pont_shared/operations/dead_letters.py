"""List and replay dead letters: `pont-dead-letters list|replay SERVICE [--queue Q]`.

A replayed message goes back to the queue it failed on with its attempt count reset;
the consumer's inbox makes a replay of something already handled harmless.
"""
from __future__ import annotations

import argparse
import json
import sys

import pika

from pont_shared.config import Settings
from pont_shared.messaging import topology
from pont_shared.messaging.broker import broker_user
from pont_shared.operations.stack import planned


def _letters(channel, service: str):
    """Every message on the service's dead-letter queue, unacknowledged (requeued on close)."""
    queue = topology.dead_letter_queue_name(service)
    channel.queue_declare(queue, durable=True, arguments=topology.QUORUM)
    channel.queue_bind(queue, topology.dead_name(service), routing_key=service)
    while True:
        method, props, body = channel.basic_get(queue, auto_ack=False)
        if method is None:
            return
        yield method, props, body


def _describe(props, body) -> dict:
    headers = props.headers or {}
    try:
        envelope = json.loads(body)
        event = {"event_id": envelope.get("id"), "event_type": envelope.get("type"), "source": envelope.get("source")}
    except (ValueError, AttributeError):
        event = {"event_id": None, "event_type": None, "source": None}
    return {
        "queue": headers.get(topology.HEADER_QUEUE),
        "attempts": headers.get(topology.HEADER_ATTEMPT),
        "failed_at": headers.get(topology.HEADER_FAILED_AT),
        "error": headers.get(topology.HEADER_ERROR),
        **event,
    }


def list_dead_letters(amqp_uri: str, service: str) -> list[dict]:
    conn = pika.BlockingConnection(pika.URLParameters(amqp_uri))
    try:
        channel = conn.channel()
        channel.exchange_declare(topology.dead_name(service), "direct", durable=True)
        return [_describe(props, body) for _m, props, body in _letters(channel, service)]
    finally:
        conn.close()  # nothing was acknowledged: every letter stays where it was


def replay_dead_letters(amqp_uri: str, service: str, queue: str | None = None) -> int:
    """Move the service's dead letters (those of `queue` only, if given) back for handling."""
    conn = pika.BlockingConnection(pika.URLParameters(amqp_uri))
    user = broker_user(amqp_uri)
    replayed = 0
    try:
        channel = conn.channel()
        channel.exchange_declare(topology.dead_name(service), "direct", durable=True)
        requeue = topology.requeue_name(service)
        channel.exchange_declare(requeue, "direct", durable=True)
        channel.confirm_delivery()
        for method, props, body in list(_letters(channel, service)):
            letter_headers = props.headers or {}
            target = letter_headers.get(topology.HEADER_QUEUE)
            if not target or (queue and target != queue):
                continue
            channel.basic_publish(
                requeue, target, body,
                pika.BasicProperties(content_type=props.content_type, delivery_mode=2, user_id=user,
                                     headers={topology.HEADER_ATTEMPT: 0, "x-pont-replayed": True,
                                              topology.HEADER_PUBLISHER: letter_headers.get(
                                                  topology.HEADER_PUBLISHER, props.user_id)}),
                mandatory=True,
            )
            channel.basic_ack(method.delivery_tag)
            replayed += 1
    finally:
        conn.close()
    return replayed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["list", "replay"])
    parser.add_argument("services", nargs="*",
                        help="e.g. referrals agency_link_health_cardiff_vale (default: every service make start runs)")
    parser.add_argument("--queue", help="replay only letters that failed on this queue")
    args = parser.parse_args(argv)
    settings = Settings.from_env("tools")
    services = args.services or [name for name, _args, _port in planned(settings)]
    for service in services:
        if args.command == "list":
            for letter in list_dead_letters(Settings.from_env(service).amqp_uri, service):
                print(json.dumps({"service": service, **letter}))
        else:
            # as the service's own broker user: only it may write to its requeue exchange
            count = replay_dead_letters(Settings.from_env(service).amqp_uri, service, args.queue)
            print(f"{service}: replayed {count} dead letter(s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
