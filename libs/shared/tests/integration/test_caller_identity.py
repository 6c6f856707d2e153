"""Who a service works for is verified, not trusted: Pont's RPC entrypoint against the real broker.

The caller must be the gateway's signed assertion; claims as a plain dict are accepted only
from a service the method names in `vouched_by`, as RabbitMQ authenticated the sender.
"""
from __future__ import annotations

import json
import subprocess
import uuid

import pika
import pytest
from nameko.containers import ServiceContainer

from pont_shared.contract.caller import DEV_CALLER_SIGNING_KEY, CallerSigner, new_signing_key
from pont_shared.messaging.rpc import rpc
from pont_shared.testing import signed
from pont_shared.testing.fixtures import delete_queues

pytestmark = pytest.mark.integration
DSL = {"sub": "dsl1", "org": "school:6612001", "roles": ["dsl"]}


def probe_class(name: str, voucher: str) -> type:
    """A service whose methods answer with the caller they were given; `on_behalf` trusts `voucher`."""

    class Probe:
        @rpc
        def whoami(self, caller: dict) -> dict:
            return caller

        @rpc(caller="request.caller", vouched_by=(voucher,))
        def on_behalf(self, request: dict) -> dict:
            return {"caller": request["caller"], "n": request["n"]}

        @rpc(caller="requests[].caller")
        def many(self, requests: list) -> list:
            return [request["caller"]["sub"] for request in requests]

    Probe.name = name
    return Probe


def rabbitmqctl(*args: str) -> None:
    result = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def broker():
    """A vhost of its own with three users: the probe service's, a `friend` service and a stranger."""
    tag = uuid.uuid4().hex[:8]
    vhost, users = f"pont-caller-{tag}", {role: f"{role}_c{tag}" for role in ("probe", "friend", "stranger")}
    rabbitmqctl("add_vhost", vhost)
    try:
        for user in users.values():
            rabbitmqctl("add_user", user, f"pw-{user}")
            rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
        yield {"users": users, "uri": lambda role: f"amqp://{users[role]}:pw-{users[role]}@127.0.0.1:5672/{vhost}"}
    finally:
        rabbitmqctl("delete_vhost", vhost)
        for user in users.values():
            subprocess.run(["rabbitmqctl", "delete_user", user], capture_output=True, timeout=120)


@pytest.fixture
def start_probe():
    containers = []

    def start(uri: str, name: str, vouched_by: str = "friend") -> str:
        container = ServiceContainer(probe_class(name, vouched_by), {"AMQP_URI": uri})
        container.start()
        containers.append(container)
        return name

    yield start
    for container in containers:
        container.stop()
        delete_queues(container)


def call(uri: str, service: str, method: str, *args, **kwargs):
    """An RPC request published as `uri`'s user, with `user_id` set as Pont's RpcProxy sets it: (result, error)."""
    params = pika.URLParameters(uri)
    with pika.BlockingConnection(params) as connection:
        channel = connection.channel()
        reply_queue = channel.queue_declare("", exclusive=True).method.queue
        channel.queue_bind(reply_queue, "nameko-rpc", routing_key=reply_queue)
        correlation_id = uuid.uuid4().hex
        channel.basic_publish("nameko-rpc", f"{service}.{method}", json.dumps({"args": args, "kwargs": kwargs}),
                              pika.BasicProperties(content_type="application/json", reply_to=reply_queue,
                                                   correlation_id=correlation_id, user_id=params.credentials.username))
        for _method, properties, body in channel.consume(reply_queue, inactivity_timeout=10):
            assert body is not None, "no reply within 10 s"
            if properties.correlation_id == correlation_id:
                answer = json.loads(body)
                return answer["result"], (answer["error"] or {}).get("exc_type")


class TestTheGatewaysAssertion:
    def test_a_signed_caller_reaches_the_method_as_its_claims(self, broker, start_probe):
        probe = start_probe(broker["uri"]("probe"), broker["users"]["probe"])
        result, error = call(broker["uri"]("stranger"), probe, "whoami", signed(DSL))
        assert error is None and result == DSL

    @pytest.mark.parametrize("forged", [
        DSL,  # claims written by hand
        CallerSigner(new_signing_key()).sign("dsl1", "school:6612001", ["dsl"]),  # another key
        "not-a-token",
        None,
    ], ids=["dict", "other-key", "garbage", "none"])
    def test_a_forged_or_missing_caller_is_refused_and_the_method_never_runs(self, broker, start_probe, forged):
        probe = start_probe(broker["uri"]("probe"), broker["users"]["probe"])
        result, error = call(broker["uri"]("stranger"), probe, "whoami", forged)
        assert (result, error) == (None, "CallerRefused")

    def test_an_expired_assertion_of_the_right_key_is_refused(self, broker, start_probe):
        stale = CallerSigner(DEV_CALLER_SIGNING_KEY).sign("dsl1", "school:6612001", ["dsl"], now=1_000_000)
        probe = start_probe(broker["uri"]("probe"), broker["users"]["probe"])
        assert call(broker["uri"]("stranger"), probe, "whoami", stale) == (None, "CallerRefused")

    def test_every_caller_of_a_batch_is_checked(self, broker, start_probe):
        probe = start_probe(broker["uri"]("probe"), broker["users"]["probe"])
        good = {"caller": signed(DSL)}
        assert call(broker["uri"]("stranger"), probe, "many", [good, good]) == (["dsl1", "dsl1"], None)
        assert call(broker["uri"]("stranger"), probe, "many", [good, {"caller": DSL}]) == (None, "CallerRefused")
        assert call(broker["uri"]("stranger"), probe, "many", [good, {}]) == (None, "CallerRefused")


class TestAServiceVouching:
    def test_claims_vouched_by_a_named_service_are_accepted(self, broker, start_probe):
        probe = start_probe(broker["uri"]("probe"), broker["users"]["probe"], vouched_by=broker["users"]["friend"])
        result, error = call(broker["uri"]("friend"), probe, "on_behalf", {"caller": DSL, "n": 1})
        assert error is None and result == {"caller": DSL, "n": 1}

    def test_the_same_claims_from_any_other_user_are_refused(self, broker, start_probe):
        probe = start_probe(broker["uri"]("probe"), broker["users"]["probe"], vouched_by=broker["users"]["friend"])
        assert call(broker["uri"]("stranger"), probe, "on_behalf", {"caller": DSL, "n": 1}) == (None, "CallerRefused")

    def test_a_vouched_caller_must_still_have_the_shape_of_a_caller(self, broker, start_probe):
        probe = start_probe(broker["uri"]("probe"), broker["users"]["probe"], vouched_by=broker["users"]["friend"])
        forged = {"sub": "x", "org": "school:1", "roles": ["dsl"], "admin": True}
        assert call(broker["uri"]("friend"), probe, "on_behalf", {"caller": forged, "n": 1}) == (None, "CallerRefused")

    def test_a_method_that_names_no_voucher_takes_only_the_gateways_assertion(self, broker, start_probe):
        probe = start_probe(broker["uri"]("probe"), broker["users"]["probe"])
        assert call(broker["uri"]("friend"), probe, "whoami", DSL) == (None, "CallerRefused")
