"""Quorum queues (pont_shared.messaging.topology) and the migration of an older Pont's classic queues
(pont_shared.operations.queues), against the real RabbitMQ."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid

import amqp
import kombu
import pytest
from nameko.exceptions import RpcTimeout
from nameko.standalone.rpc import ServiceRpcProxy

from pont_shared.contract.envelope import EVENTS_EXCHANGE
from pont_shared.messaging import topology
from pont_shared.messaging.broker import connect_amqp
from pont_shared.messaging.rpc import RpcProxy, rpc
from pont_shared.operations import queues
from pont_shared.testing import own_vhost, wait_until

from .probe import PingConsumer

pytestmark = pytest.mark.integration


class Quorate(PingConsumer):
    """An event consumer that also answers RPC and calls another service (so has a reply queue)."""

    name = "quorate"
    peer = RpcProxy("nobody")

    @rpc
    def hello(self) -> str:
        return "hello"


def declared(vhost: str, owner: str) -> dict[str, dict]:
    return {row["name"]: {**row, "arguments": {name: value for name, _kind, value in row["arguments"]}}
            for row in queues.listed("list_queues", vhost, "name", "type", "exclusive", "arguments")
            if queues.owns(owner, row["name"]) or row["name"].startswith(f"rpc.reply-{owner}-")}


def test_every_queue_a_service_declares_is_a_quorum_queue_but_its_reply_queue(
        start_service, make_settings, postgres_url, service_name):
    start_service(Quorate, make_settings(service_name, postgres_url), name=service_name)

    found = wait_until(lambda: (queues_now := declared("/", service_name)) and len(queues_now) == 7 and queues_now,
                       timeout=10)

    replies = {name: row for name, row in found.items() if name.startswith("rpc.reply-")}
    work = {name: row for name, row in found.items() if name not in replies}
    assert set(work) == {f"{service_name}.on_ping", f"{service_name}.dead-letters", f"rpc-{service_name}",
                         *(f"pont.delay.{service_name}.{ms}ms" for ms in (50, 100, 200))}
    assert {row["type"] for row in work.values()} == {"quorum"}
    delay = work[f"pont.delay.{service_name}.100ms"]["arguments"]
    assert delay == {"x-queue-type": "quorum", "x-message-ttl": 100,
                     "x-dead-letter-exchange": f"pont.requeue.{service_name}",
                     "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}
    [reply] = replies.values()
    assert reply["type"] == "classic" and reply["exclusive"] is True


class Asker:
    """Asks a service that never answers, with a short deadline."""

    name = "asker"
    silent = RpcProxy(name_key="SILENT_SERVICE", timeout_key="ASK_TIMEOUT_SECONDS")

    @rpc
    def ask(self) -> str:
        try:
            return self.silent.anything()
        except RpcTimeout:
            return "timed out"


def test_a_request_whose_caller_gave_up_is_dropped_not_carried_out_late(
        start_service, make_settings, postgres_url, service_name, broker_url):
    silent = f"{service_name}_silent"
    with kombu.Connection(broker_url) as connection:
        request_queue = topology.rpc_queue(f"rpc-{silent}", f"{silent}.*")(connection.default_channel)
        request_queue.declare()   # the service is down; its queue is there
        try:
            start_service(Asker, make_settings(service_name, postgres_url), name=service_name,
                          extra_config={"SILENT_SERVICE": silent, "ASK_TIMEOUT_SECONDS": 0.5})
            with ServiceRpcProxy(service_name, {"AMQP_URI": broker_url}) as asker:
                assert asker.ask() == "timed out"
            assert request_queue.get(no_ack=True) is None
        finally:
            request_queue.delete()


@pytest.fixture
def old_broker():
    """A vhost as an older Pont left it: an owner's classic queues holding messages of another user."""
    with own_vhost("pont_queues") as uri:
        vhost = uri.rsplit("/", 1)[1]
        publisher, password = f"pont_test_publisher_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
        queues.rabbitmqctl("add_user", publisher, password)
        try:
            queues.rabbitmqctl("set_permissions", "-p", vhost, publisher, ".*", ".*", ".*")
            yield uri, vhost, publisher, uri.replace("guest:guest@", f"{publisher}:{password}@")
        finally:
            queues.rabbitmqctl("delete_user", publisher)


def declare_as_before(channel, owner: str) -> None:
    """What Pont declared before its queues were quorum: the same queues, classic."""
    for exchange, kind in ((EVENTS_EXCHANGE, "topic"), (topology.RPC_EXCHANGE, "topic"),
                           (topology.requeue_name(owner), "direct"), (topology.dead_name(owner), "direct"),
                           (topology.delay_name(owner, 0.1), "fanout")):
        channel.exchange_declare(exchange, kind, durable=True, auto_delete=False)
    consumer = f"{owner}.on_ping"
    channel.queue_declare(consumer, durable=True, auto_delete=False)
    channel.queue_bind(consumer, EVENTS_EXCHANGE, "pont.test.ping.v1")
    channel.queue_bind(consumer, topology.requeue_name(owner), consumer)
    channel.queue_declare(topology.dead_letter_queue_name(owner), durable=True, auto_delete=False)
    channel.queue_bind(topology.dead_letter_queue_name(owner), topology.dead_name(owner), owner)
    delay = topology.delay_name(owner, 0.1)
    channel.queue_declare(delay, durable=True, auto_delete=False, arguments={
        "x-message-ttl": 100, "x-dead-letter-exchange": topology.requeue_name(owner)})
    channel.queue_bind(delay, delay, "")
    channel.queue_declare(f"rpc-{owner}", durable=True, auto_delete=False)
    channel.queue_bind(f"rpc-{owner}", topology.RPC_EXCHANGE, f"{owner}.*")


def drain(channel, queue: str) -> list[amqp.Message]:
    taken = []
    while (message := channel.basic_get(queue, no_ack=True)) is not None:
        taken.append(message)
    return taken


def test_an_older_ponts_classic_queues_become_quorum_keeping_every_message_and_its_publisher(old_broker):
    uri, vhost, publisher, publisher_uri = old_broker
    owner = f"svc_{uuid.uuid4().hex[:8]}"
    operator = connect_amqp(uri)
    channel = operator.channel()
    declare_as_before(channel, owner)
    bindings = {queue: queues.bindings_of(vhost, queue) for queue in declared(vhost, owner)}
    sender = connect_amqp(publisher_uri, confirm_publish=True)
    sending = sender.channel()
    for n in range(40):
        sending.basic_publish(amqp.Message(f"ping {n}".encode(), message_id=f"m{n}", user_id=publisher,
                                           delivery_mode=2, application_headers={"x-pont-attempt": n % 3}),
                              exchange=EVENTS_EXCHANGE, routing_key="pont.test.ping.v1")
    for n in range(3):
        sending.basic_publish(amqp.Message(b"dead", message_id=f"d{n}", user_id=publisher, delivery_mode=2),
                              exchange=topology.dead_name(owner), routing_key=owner)
    sender.close()

    run = subprocess.run([sys.executable, "-m", "pont_shared.operations.queues", "migrate", "--owner", owner],
                         env={**os.environ, "AMQP_URI": uri}, capture_output=True, text=True, timeout=300)

    assert run.returncode == 0, run.stderr
    assert "4 queue(s) migrated" in run.stdout
    after = declared(vhost, owner)
    assert set(after) == set(bindings) and {row["type"] for row in after.values()} == {"quorum"}
    assert after[topology.delay_name(owner, 0.1)]["arguments"] == topology.delay_arguments(owner, 0.1)
    assert {queue: queues.bindings_of(vhost, queue) for queue in after} == bindings
    pings = drain(channel, f"{owner}.on_ping")
    assert sorted(m.properties["message_id"] for m in pings) == sorted(f"m{n}" for n in range(40))
    assert {m.properties["user_id"] for m in pings} == {publisher}
    assert {m.body.decode(): m.headers["x-pont-attempt"] for m in pings} == {f"ping {n}": n % 3 for n in range(40)}
    assert len(drain(channel, topology.dead_letter_queue_name(owner))) == 3
    # the services now declare them as they are, and nothing of the migration is left
    with kombu.Connection(uri) as services:
        for queue in (topology.consumer_queue(owner, f"{owner}.on_ping", topology.events_exchange,
                                              "pont.test.ping.v1"),
                      topology.delay_queue(owner, 0.1), topology.dead_letter_queue(owner),
                      topology.rpc_queue(f"rpc-{owner}", f"{owner}.*")):
            queue(services.default_channel).declare()
    assert "pont-queue-migration" not in queues.rabbitmqctl("list_users")
    operator.close()
    again = subprocess.run([sys.executable, "-m", "pont_shared.operations.queues", "migrate", "--owner", owner],
                           env={**os.environ, "AMQP_URI": uri}, capture_output=True, text=True, timeout=300)
    assert "0 queue(s) migrated" in again.stdout


def test_a_migration_interrupted_after_the_classic_queue_was_deleted_is_finished_by_the_next_run(old_broker):
    uri, vhost, _publisher, _ = old_broker
    owner = f"svc_{uuid.uuid4().hex[:8]}"
    operator = connect_amqp(uri, confirm_publish=True)
    channel = operator.channel()
    declare_as_before(channel, owner)
    consumer = f"{owner}.on_ping"
    bindings = queues.bindings_of(vhost, consumer)
    # the run stopped at step 3: the classic queue gone, its messages and bindings on the temporary one
    temporary = consumer + queues.TEMPORARY
    channel.queue_declare(temporary, durable=True, auto_delete=False, arguments=topology.QUORUM)
    for binding in bindings:
        channel.queue_bind(temporary, binding.source, binding.routing_key)
    channel.queue_delete(consumer)
    for n in range(5):
        channel.basic_publish(amqp.Message(b"ping", message_id=f"m{n}", delivery_mode=2),
                              exchange=EVENTS_EXCHANGE, routing_key="pont.test.ping.v1")

    moved = queues.migrate(uri, vhost, [owner])

    assert moved[consumer] == 5
    after = declared(vhost, owner)
    assert temporary not in after and after[consumer]["type"] == "quorum"
    assert queues.bindings_of(vhost, consumer) == bindings
    assert len(drain(channel, consumer)) == 5
    operator.close()
