"""Pont's RPC entrypoint against the real broker: what a caller receives, and how it is sent."""
from __future__ import annotations

import json
import select
import uuid
from datetime import UTC, datetime

import pika
import pytest
from nameko.containers import ServiceContainer
from nameko.exceptions import RemoteError
from nameko.standalone.rpc import ClusterRpcProxy

from pont_shared.messaging.rpc import _REPLIES, rpc
from pont_shared.testing import close_broker_connections, wait_until
from pont_shared.testing.fixtures import delete_queues

pytestmark = pytest.mark.integration


class Answers:
    name = "rpc_answers"

    @rpc
    def echo(self, value):
        return {"value": value, "at": datetime(2026, 9, 1, 8, 30, tzinfo=UTC)}

    @rpc
    def unserialisable(self):
        return object()

    @rpc
    def fails(self):
        raise ValueError("no such pupil")


@pytest.fixture
def answers(broker_url):
    name = f"rpc_answers_{uuid.uuid4().hex[:8]}"
    container = ServiceContainer(type("Answers", (Answers,), {"name": name}), {"AMQP_URI": broker_url})
    container.start()
    yield name
    container.stop()
    delete_queues(container)


def test_a_caller_gets_the_result_as_nameko_would_give_it(answers, broker_url):
    with ClusterRpcProxy({"AMQP_URI": broker_url}, timeout=10) as cluster:
        service = getattr(cluster, answers)
        assert service.echo({"ysgol": "Ysgol Gymraeg — ŵ"}) == {
            "value": {"ysgol": "Ysgol Gymraeg — ŵ"}, "at": datetime(2026, 9, 1, 8, 30, tzinfo=UTC)}
        with pytest.raises(RemoteError) as failed:
            service.fails()
        assert failed.value.exc_type == "ValueError" and "no such pupil" in failed.value.value
        with pytest.raises(RemoteError) as unserialisable:
            service.unserialisable()
        assert unserialisable.value.exc_type == "UnserializableValueError"
        assert service.echo(1)["value"] == 1  # the service lives on


def test_the_reply_is_sent_transient(answers, broker_url):
    reply_queue = f"rpc_reply_probe_{uuid.uuid4().hex[:8]}"
    with pika.BlockingConnection(pika.URLParameters(broker_url)) as conn:
        channel = conn.channel()
        channel.queue_declare(reply_queue, exclusive=True)
        channel.queue_bind(reply_queue, "nameko-rpc", routing_key=reply_queue)
        channel.basic_publish("nameko-rpc", f"{answers}.echo", json.dumps({"args": ["x"], "kwargs": {}}),
                              pika.BasicProperties(content_type="application/json", reply_to=reply_queue,
                                                   correlation_id="c-1"))
        method, properties, body = wait_until(lambda: _got(channel, reply_queue), timeout=10,
                                              message="no reply")
    assert properties.delivery_mode == 1
    assert properties.correlation_id == "c-1" and properties.content_type == "application/json"
    reply = json.loads(body)
    assert reply["error"] is None and reply["result"]["value"] == "x"


def _got(channel, queue):
    method, properties, body = channel.basic_get(queue, auto_ack=True)
    return (method, properties, body) if method else None


def test_a_reply_after_the_broker_closed_the_reply_connection_still_arrives(answers, broker_url):
    with ClusterRpcProxy({"AMQP_URI": broker_url}, timeout=10) as cluster:
        service = getattr(cluster, answers)
        assert service.echo(1)["value"] == 1
        close_at_the_broker(_REPLIES._open[broker_url].connection)
        assert service.echo(2)["value"] == 2  # written again on a new connection, not lost
        assert service.echo(3)["value"] == 3


def close_at_the_broker(connection) -> None:
    """Force-close `connection` at the broker; return once the broker's close has reached it."""
    sock = connection.sock
    assert close_broker_connections({sock.getsockname()[1]}) == 1
    wait_until(lambda: select.select([sock], [], [], 0)[0], timeout=30, message="the broker did not close it")
