"""Pont's classic queues made quorum queues, in place, keeping every message:

    python -m pont_shared.operations.queues migrate [--vhost /] [--owner NAME ...] [--dry-run]

RabbitMQ cannot change a queue's type, and refuses to declare a quorum queue over a classic one
of the same name (PRECONDITION_FAILED), so a Pont upgraded onto a broker that ran an older Pont
would not start. Run this once, with Pont's services stopped (`make stop`; scaled to zero on
Kubernetes) and the broker up; what the services publish meanwhile waits in their outboxes.

The queues are those Pont declares (`topology`): each owner's consumer queues (`<owner>.*`, its
dead-letter queue included), delay queues (`pont.delay.<owner>.*`) and RPC request queue
(`rpc-<owner>`), the owners being the broker users `broker_access` generates (the services
`make start` runs and `PONT_AGENCIES`), or `--owner`. Reply queues are left to expire. For each
classic one, `<queue>`:

1. `<queue>.migrating`, a quorum queue, is bound as `<queue>` is, and `<queue>` unbound, so what
   is published meanwhile lands there;
2. every message of `<queue>` is moved to it: published with the same properties, and taken off
   `<queue>` only once the broker confirmed the copy;
3. `<queue>` is deleted and declared again as the services declare it (quorum, a delay queue
   with its TTL and at-least-once dead-lettering), bound again, and the messages moved back;
4. `<queue>.migrating` is deleted.

Interrupted, it can be run again: a `<queue>.migrating` left behind is finished first. A message
keeps its `user_id`, which consumers check against its source; republishing it under another
user needs RabbitMQ's `impersonator` tag, so the moves are made as a temporary user with that
tag (and every permission on the vhost), created with `rabbitmqctl` and deleted at the end.
"""
from __future__ import annotations

import argparse
import json
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import quote

import amqp

from pont_shared.config import Settings
from pont_shared.messaging import topology
from pont_shared.messaging.broker import connect_amqp, parse_brokers
from pont_shared.operations import broker_access

TEMPORARY = ".migrating"
DELAY = re.compile(r"^pont\.delay\.(?P<owner>.+)\.(?P<ms>\d+)ms$")


@dataclass(frozen=True)
class Binding:
    source: str
    routing_key: str
    arguments: tuple = ()


ONCE_ONLY = {"add_user", "delete_user"}  # the commands a second try could not repeat harmlessly
TRIES = 3


def rabbitmqctl(*args: str, timeout: float = 60.0) -> str:
    """What the command printed; a command that may be repeated is tried again (a busy broker's CLI
    can fail for a moment, e.g. exit 75 when a queue answers late)."""
    tries = 1 if args[0] in ONCE_ONLY else TRIES
    for attempt in range(1, tries + 1):
        if attempt > 1:
            time.sleep(attempt - 1)
        result = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=timeout)
        if result.returncode == 0:
            return result.stdout
    raise RuntimeError(f"rabbitmqctl {args[0]} exited {result.returncode}: {result.stderr.strip()[:200]}")


def listed(command: str, vhost: str, *columns: str) -> list[dict]:
    return json.loads(rabbitmqctl(command, "-p", vhost, *columns, "--formatter", "json") or "[]")


def owns(owner: str, queue: str) -> bool:
    return queue.startswith(f"{owner}.") or queue == f"rpc-{owner}" or queue.startswith(f"pont.delay.{owner}.")


def target_arguments(queue: str) -> dict:
    """The arguments Pont's services declare `queue` with (`topology`)."""
    delay = DELAY.match(queue)
    return topology.delay_arguments(delay["owner"], int(delay["ms"]) / 1000) if delay else dict(topology.QUORUM)


def bindings_of(vhost: str, queue: str) -> set[Binding]:
    """`queue`'s bindings, but the default exchange's."""
    return {Binding(row["source_name"], row["routing_key"], tuple(tuple(arg) for arg in row["arguments"]))
            for row in listed("list_bindings", vhost, "source_name", "destination_name", "destination_kind",
                              "routing_key", "arguments")
            if row["destination_kind"] == "queue" and row["destination_name"] == queue and row["source_name"]}


def to_migrate(vhost: str, owners: list[str]) -> dict[str, bool]:
    """{queue: whether a classic one is still there}: each classic queue of `owners`, and each queue a
    run left half done (its `<queue>.migrating` still there)."""
    queues = {row["name"]: row for row in listed("list_queues", vhost, "name", "type", "exclusive")}
    pending = {}
    for name, row in queues.items():
        base = name.removesuffix(TEMPORARY)
        if not any(owns(owner, base) for owner in owners) or base.startswith("rpc.reply-"):
            continue
        if name.endswith(TEMPORARY):
            pending[base] = base in queues and queues[base]["type"] == "classic"
        elif row["type"] == "classic" and not row["exclusive"]:
            pending[name] = True
    return pending


def migrate_queue(connection: amqp.Connection, vhost: str, queue: str, classic: bool) -> int:
    """Steps 1–4 above for one queue; how many messages it holds now.

    The quorum queue is filled on a channel other than the one that emptied the classic queue of
    the same name: RabbitMQ 3.10's channel keeps the type of a queue it delivered to, and crashes
    (taking the vhost down) delivering to a queue of that name that has since changed type."""
    temporary = queue + TEMPORARY
    bindings = bindings_of(vhost, queue) | bindings_of(vhost, temporary)
    with _channel(connection) as channel:
        channel.queue_declare(temporary, durable=True, auto_delete=False, arguments=topology.QUORUM)
        for binding in bindings:
            channel.queue_bind(temporary, binding.source, binding.routing_key, arguments=dict(binding.arguments))
        if classic:
            for binding in bindings:
                channel.queue_unbind(queue, binding.source, binding.routing_key, arguments=dict(binding.arguments))
            move(channel, queue, temporary)
            channel.queue_delete(queue, if_empty=True)
    with _channel(connection) as channel:
        channel.queue_declare(queue, durable=True, auto_delete=False, arguments=target_arguments(queue))
        for binding in bindings:
            channel.queue_bind(queue, binding.source, binding.routing_key, arguments=dict(binding.arguments))
        for binding in bindings:
            channel.queue_unbind(temporary, binding.source, binding.routing_key, arguments=dict(binding.arguments))
        moved = move(channel, temporary, queue)
        # a quorum queue cannot be deleted `if_empty`; nothing reaches it once unbound and emptied
        if channel.queue_declare(temporary, passive=True).message_count:
            raise RuntimeError(f"{temporary} is not empty: run again")
        channel.queue_delete(temporary)
    return moved


@contextmanager
def _channel(connection: amqp.Connection) -> Iterator[amqp.Channel]:
    channel = connection.channel()
    try:
        yield channel
    finally:
        channel.close()


def move(channel, source: str, destination: str) -> int:
    """Every message of `source` into `destination`, each acknowledged once its copy is confirmed."""
    count = 0
    while (message := channel.basic_get(source, no_ack=False)) is not None:
        channel.basic_publish(amqp.Message(message.body, **message.properties), exchange="", routing_key=destination)
        channel.basic_ack(message.delivery_tag)
        count += 1
    return count


@contextmanager
def impersonator(amqp_uri: str, vhost: str) -> Iterator[str]:
    """The URI of a temporary user that may publish with another user's `user_id`; deleted after."""
    user, password = f"pont-queue-migration-{secrets.token_hex(4)}", secrets.token_urlsafe(24)
    rabbitmqctl("add_user", user, password)
    try:
        rabbitmqctl("set_user_tags", user, "impersonator")
        rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
        broker = parse_brokers(amqp_uri)[0]
        scheme = "amqps" if broker.tls else "amqp"
        yield f"{scheme}://{quote(user, safe='')}:{quote(password, safe='')}@{broker.address}/{quote(vhost, safe='')}"
    finally:
        rabbitmqctl("delete_user", user)


def migrate(amqp_uri: str, vhost: str, owners: list[str], dry_run: bool = False) -> dict[str, int]:
    """Migrate every pending queue of `owners` on `vhost`: {queue: messages moved}."""
    pending = to_migrate(vhost, owners)
    if dry_run or not pending:
        return {queue: 0 for queue in pending}
    moved = {}
    with impersonator(amqp_uri, vhost) as uri:
        connection = connect_amqp(uri, confirm_publish=True)
        try:
            for queue, classic in sorted(pending.items()):
                moved[queue] = migrate_queue(connection, vhost, queue, classic)
        finally:
            connection.close()
    return moved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["migrate"])
    parser.add_argument("--vhost", help="default: AMQP_URI's")
    parser.add_argument("--owner", action="append", help="a queue owner (default: every generated broker user)")
    parser.add_argument("--dry-run", action="store_true", help="list the queues, change nothing")
    args = parser.parse_args(argv)
    settings = Settings.from_env("tools")
    vhost = args.vhost or parse_brokers(settings.amqp_uri)[0].virtual_host
    owners = args.owner or list(broker_access.users(settings))
    moved = migrate(settings.amqp_uri, vhost, owners, dry_run=args.dry_run)
    for queue, count in moved.items():
        print(f"{queue}: {'classic, would become quorum' if args.dry_run else f'quorum ({count} messages moved)'}")
    print(f"{len(moved)} queue(s) {'to migrate' if args.dry_run else 'migrated'} on vhost {vhost}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
