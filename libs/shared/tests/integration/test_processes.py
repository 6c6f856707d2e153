"""Whole processes: graceful stop of a running service, and the agency's own pika client."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pika
import pytest
import requests
from sqlalchemy import Column, MetaData, String, Table, func, insert, select

from pont_shared.config import Settings, safe_name
from pont_shared.contract.envelope import DISCLOSURES_EXCHANGE, EVENTS_EXCHANGE, Envelope
from pont_shared.contract.events import DisclosureDelivered
from pont_shared.messaging.broker import broker_user
from pont_shared.messaging.db import define_messaging_tables, make_engine
from pont_shared.messaging.topology import dead_letter_queue_name, own_topology
from pont_shared.messaging.wire import InboxClient
from pont_shared.testing import wait_until

from .probe import Ping, effects

pytestmark = pytest.mark.integration
SHARED_DIR = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def publish(broker_url: str, exchange: str, routing_key: str, envelope: Envelope) -> None:
    with pika.BlockingConnection(pika.URLParameters(broker_url)) as conn:
        conn.channel().basic_publish(exchange, routing_key, envelope.model_dump_json(),
                                     pika.BasicProperties(content_type="application/json", delivery_mode=2,
                                                          user_id=broker_user(broker_url)))


def queue_depth(broker_url: str, queue: str) -> int:
    with pika.BlockingConnection(pika.URLParameters(broker_url)) as conn:
        return conn.channel().queue_declare(queue, passive=True).method.message_count


def test_sigterm_lets_the_handler_in_flight_finish_commit_and_acknowledge(postgres_url, broker_url):
    name = f"graceful_{uuid.uuid4().hex[:8]}"
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(SHARED_DIR), "AMQP_URI": broker_url, "PONT_LOG_LEVEL": "WARNING",
           f"PONT_{safe_name(name).upper()}_DATABASE_URL": postgres_url}
    process = subprocess.Popen(
        [sys.executable, "-m", "pont_shared.operations.runner", "tests.integration.probe:PingConsumer", "--name", name,
         "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    queue = f"{name}.on_ping"
    try:
        wait_until(lambda: _ready(port), timeout=30, message="service did not become ready")
        run = uuid.uuid4().hex[:8]
        publish(broker_url, EVENTS_EXCHANGE, Ping.TYPE, Envelope.wrap(Ping(run=run, n=-15), source="/pont/probe"))
        wait_until(lambda: queue_depth(broker_url, queue) == 0)  # delivered: the handler is at work

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0

        engine = make_engine(postgres_url)
        with engine.connect() as db:
            done = db.execute(select(func.count()).select_from(effects).where(effects.c.run == run)).scalar()
        engine.dispose()
        assert done == 1  # it finished and committed
        assert queue_depth(broker_url, queue) == 0  # and was acknowledged, not requeued
    finally:
        if process.poll() is None:
            process.kill()
        queues, exchanges = own_topology(name, Settings.from_env(name, env).retry_delays)
        with pika.BlockingConnection(pika.URLParameters(broker_url)) as conn:
            channel = conn.channel()
            for doomed in (queue, f"rpc-{name}", *queues):
                channel.queue_delete(doomed)
            for doomed in exchanges:
                channel.exchange_delete(doomed)


def _ready(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200
    except requests.ConnectionError:
        return False


agency_metadata = MetaData()
agency_tables = define_messaging_tables(agency_metadata)
received = Table("received", agency_metadata, Column("id", String(36), primary_key=True),
                 Column("child_ref", String(64)), Column("subject_id", String(64)))


def disclosure(org: str, subject_id: str) -> Envelope:
    return Envelope.wrap(DisclosureDelivered(
        disclosure_id=str(uuid.uuid4()), child_ref="c_1", to_org=org, from_org="school:6612001",
        purpose="referral", subject_kind="referral", subject_id=subject_id, basis="consent", basis_ref="k",
        content={"contact": {"phone": "x"}}), source="/pont/referrals")


def test_an_agency_system_receives_its_disclosures_once_with_the_plain_client(postgres_url, broker_url):
    org = f"youth_work:{uuid.uuid4().hex[:8]}"
    consumer = f"agency-system-{safe_name(org)}"
    engine = make_engine(postgres_url)
    agency_metadata.create_all(engine)
    client = InboxClient(broker_url, engine, agency_tables, consumer=consumer, bindings=[(DISCLOSURES_EXCHANGE, org)])

    def store(db, envelope):
        if envelope.data["subject_id"] == "poison":
            raise ValueError("cannot file this")
        db.execute(insert(received).values(id=envelope.id, child_ref=envelope.subject or "",
                                           subject_id=envelope.data["subject_id"]))

    first, second = disclosure(org, "r1"), disclosure(org, "r2")
    for envelope in (first, second, first, disclosure(org, "poison")):
        publish(broker_url, DISCLOSURES_EXCHANGE, org, envelope)
    publish(broker_url, DISCLOSURES_EXCHANGE, "health:someone-else", disclosure("health:someone-else", "r9"))

    applied = client.run(store, idle_timeout=1.0)

    with engine.connect() as db:
        subjects = sorted(db.execute(select(received.c.subject_id)).scalars())
    assert applied == 2 and subjects == ["r1", "r2"]
    assert queue_depth(broker_url, dead_letter_queue_name(consumer)) == 1
    client.close()
    with pika.BlockingConnection(pika.URLParameters(broker_url)) as conn:
        conn.channel().queue_delete(consumer)
        conn.channel().queue_delete(dead_letter_queue_name(consumer))
    engine.dispose()
