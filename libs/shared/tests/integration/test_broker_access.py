"""Broker least privilege: the generated users, in a fresh vhost, against the real RabbitMQ.

Each test imports the users `broker_access` generates (agency_link users from this test's own
organisations, service users under test-unique names) into a vhost of its own, with
`rabbitmqctl import_definitions` as the operator, and deletes vhost and users at the end.
"""
from __future__ import annotations

import secrets
import subprocess
import uuid

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker

from pont_shared.config import Settings, safe_name
from pont_shared.contract.envelope import DISCLOSURES_EXCHANGE, EVENTS_EXCHANGE
from pont_shared.messaging import topology
from pont_shared.operations import broker_access

ACCESS_REFUSED, PRECONDITION_FAILED = 403, 406


def rabbitmqctl(*args: str, stdin: str | None = None) -> None:
    result = subprocess.run(["rabbitmqctl", *args], input=stdin, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def broker():
    """A fresh vhost with the generated users of two organisations and two services."""
    tag = uuid.uuid4().hex[:8]
    vhost = f"pont-access-{tag}"
    orgs = {"mine": f"health:t{tag}", "theirs": f"youth_work:t{tag}"}
    settings = Settings.from_env("tools", {"PONT_AGENCIES": ",".join(orgs.values())})
    agency_users = {f"agency_link_{safe_name(org)}": org for org in orgs.values()}
    passwords = {user: secrets.token_urlsafe(16) for user in broker_access.users(settings)}
    document = broker_access.definitions(settings, passwords, vhost)
    # only this test's agency users; the services' fixed names belong to any running stack
    keep = set(agency_users)
    for section in ("users", "permissions", "topic_permissions"):
        document[section] = [item for item in document[section] if item.get("name", item.get("user")) in keep]
    services = {role: f"{role}_t{tag}" for role in ("consent", "referrals")}
    for role, user in services.items():
        passwords[user] = secrets.token_urlsafe(16)
        broker_access.add_user(document, user, passwords[user], broker_access.permissions(
            user, role, {"pont.referral.raised.v1"}, set()), vhost)
    rabbitmqctl("add_vhost", vhost)
    try:
        broker_access.import_definitions(document)
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")  # the operator, for set-up

        def connect(user: str | None = None) -> pika.BlockingConnection:
            credentials = pika.PlainCredentials(user, passwords[user]) if user else pika.PlainCredentials(
                "guest", "guest")
            return pika.BlockingConnection(pika.ConnectionParameters(
                "127.0.0.1", 5672, vhost, credentials, blocked_connection_timeout=10))

        by_org = {name: f"agency_link_{safe_name(org)}" for name, org in orgs.items()}
        yield {"connect": connect, "orgs": orgs, "agency": by_org, "services": services, "document": document}
    finally:
        rabbitmqctl("delete_vhost", vhost)
        for user in {*agency_users, *services.values()}:
            subprocess.run(["rabbitmqctl", "delete_user", user], capture_output=True, timeout=120)


def refused(action, code: int = ACCESS_REFUSED) -> str:
    with pytest.raises(ChannelClosedByBroker) as caught:
        action()
    assert caught.value.reply_code == code, caught.value
    return caught.value.reply_text


def test_no_generated_user_is_an_administrator_or_reads_everything(broker):
    document = broker["document"]
    assert all(user["tags"] == [] for user in document["users"])
    assert all(p["read"] != ".*" and p["write"] != ".*" and p["configure"] != ".*" for p in document["permissions"])


def test_an_agency_receives_its_own_disclosures_and_publishes_its_own_events(broker):
    me, org = broker["agency"]["mine"], broker["orgs"]["mine"]
    conn = broker["connect"](me)
    channel = conn.channel()
    channel.exchange_declare(DISCLOSURES_EXCHANGE, passive=True)  # as a service checks it (topology.ensure_shared)
    queue = f"{me}.on_disclosure"
    channel.queue_declare(queue, durable=True)
    channel.queue_bind(queue, DISCLOSURES_EXCHANGE, org)
    operator = broker["connect"]().channel()
    operator.confirm_delivery()
    operator.basic_publish(DISCLOSURES_EXCHANGE, org, b"{}", mandatory=True)
    method, _props, body = channel.basic_get(queue, auto_ack=True)
    assert method is not None and body == b"{}"
    channel.confirm_delivery()
    channel.basic_publish(EVENTS_EXCHANGE, "pont.agency.decided.v1", b"{}", pika.BasicProperties(user_id=me))
    conn.close()


def test_an_agency_cannot_read_or_touch_another_organisations_queue(broker):
    theirs = f"{broker['agency']['theirs']}.on_disclosure"
    operator = broker["connect"]().channel()
    operator.queue_declare(theirs, durable=True)
    conn = broker["connect"](broker["agency"]["mine"])
    assert "access to queue" in refused(lambda: conn.channel().basic_consume(theirs, lambda *a: None))
    refused(lambda: conn.channel().basic_get(theirs))
    refused(lambda: conn.channel().queue_declare(theirs, durable=True))
    refused(lambda: conn.channel().queue_delete(theirs))
    refused(lambda: conn.channel().queue_purge(theirs))


@pytest.mark.parametrize("exchange", sorted(topology.SHARED_EXCHANGES))
def test_no_service_or_agency_can_delete_or_redeclare_a_shared_exchange(broker, exchange):
    """Otherwise one agency could delete pont.disclosed and make it again as a fanout exchange, to
    which topic permissions do not apply, and bind to every organisation's disclosures."""
    for user in (broker["agency"]["mine"], *broker["services"].values()):
        conn = broker["connect"](user)
        conn.channel().exchange_declare(exchange, passive=True)
        assert f"access to exchange '{exchange}'" in refused(lambda conn=conn: conn.channel().exchange_delete(exchange))
        refused(lambda conn=conn: conn.channel().exchange_declare(exchange, "topic", durable=True))
        refused(lambda conn=conn: conn.channel().exchange_declare(exchange, "fanout", durable=True))
        conn.close()
    broker["connect"]().channel().exchange_declare(exchange, passive=True)  # still there


def test_an_agency_cannot_bind_to_another_organisations_disclosures(broker):
    me = broker["agency"]["mine"]
    conn = broker["connect"](me)
    channel = conn.channel()
    channel.queue_declare(f"{me}.snoop", durable=False)
    text = refused(lambda: channel.queue_bind(f"{me}.snoop", DISCLOSURES_EXCHANGE, broker["orgs"]["theirs"]))
    assert "access to topic" in text
    channel = conn.channel()
    refused(lambda: channel.queue_bind(f"{me}.snoop", DISCLOSURES_EXCHANGE, "#"))
    # nor to events it does not consume
    refused(lambda: conn.channel().queue_bind(f"{me}.snoop", EVENTS_EXCHANGE, "pont.referral.raised.v1"))
    refused(lambda: conn.channel().queue_bind(f"{me}.snoop", EVENTS_EXCHANGE, "#"))


def test_an_agency_cannot_publish_what_it_does_not_own(broker):
    me, them = broker["agency"]["mine"], broker["agency"]["theirs"]
    conn = broker["connect"](me)

    def publish(exchange, key, **props):
        channel = conn.channel()
        channel.confirm_delivery()
        channel.basic_publish(exchange, key, b"{}", pika.BasicProperties(**props))

    assert "access to topic" in refused(lambda: publish(EVENTS_EXCHANGE, "pont.consent.granted.v1", user_id=me))
    refused(lambda: publish(DISCLOSURES_EXCHANGE, broker["orgs"]["theirs"], user_id=me))
    refused(lambda: publish(topology.requeue_name(broker["services"]["consent"]), "x", user_id=me))
    refused(lambda: publish(topology.dead_name(them), them, user_id=me))
    assert "user_id" in refused(lambda: publish(EVENTS_EXCHANGE, "pont.agency.decided.v1", user_id=them),
                                PRECONDITION_FAILED)
    # it answers the RPC requests it is sent (a reply goes to the caller's uuid), but asks no service
    # anything: no `consent.share` with a caller it wrote itself
    publish(topology.RPC_EXCHANGE, str(uuid.uuid4()), user_id=me)
    assert "access to topic" in refused(lambda: publish(topology.RPC_EXCHANGE, "consent.share", user_id=me))
    refused(lambda: publish(topology.RPC_EXCHANGE, "agency_link_x.inbox", user_id=me))


def test_a_service_cannot_read_another_services_queue(broker):
    consent, referrals = broker["services"]["consent"], broker["services"]["referrals"]
    broker["connect"](referrals).channel().queue_declare(f"{referrals}.on_consent", durable=True)
    conn = broker["connect"](consent)
    refused(lambda: conn.channel().basic_get(f"{referrals}.on_consent"))
    refused(lambda: conn.channel().basic_consume(f"{referrals}.on_consent", lambda *a: None))
    refused(lambda: conn.channel().queue_bind(f"{referrals}.on_consent", EVENTS_EXCHANGE, "pont.referral.raised.v1"))
    # and may publish only its own event types
    channel = conn.channel()
    channel.confirm_delivery()
    channel.basic_publish(EVENTS_EXCHANGE, "pont.consent.granted.v1", b"{}", pika.BasicProperties(user_id=consent))
    refused(lambda: channel.basic_publish(EVENTS_EXCHANGE, "pont.referral.raised.v1", b"{}",
                                          pika.BasicProperties(user_id=consent)))
