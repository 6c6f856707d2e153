"""pytest fixtures for tests against the real broker and PostgreSQL.

Policy (nameko-examples'): real infrastructure for what Pont owns — RabbitMQ and
PostgreSQL — and fakes only for what it does not. Each test gets its own service names
and databases, so tests never see each other's queues or rows.
"""
from __future__ import annotations

import dataclasses

import pytest
from kombu import Connection
from nameko.containers import ServiceContainer

from pont_shared.config import Settings
from pont_shared.messaging.consumer import EventConsumer, queue_name_of
from pont_shared.messaging.topology import dead_letter_queue_name, own_topology
from pont_shared.testing import AMQP_URI, fresh_database, random_name, web_address


@pytest.fixture
def broker_url() -> str:
    return AMQP_URI


@pytest.fixture
def postgres_url():
    with fresh_database() as url:
        yield url


@pytest.fixture
def make_settings(broker_url):
    """Settings for a service under test: its database, fast retries, a free port."""

    def make(service: str, database_url: str, **overrides) -> Settings:
        env = {
            "AMQP_URI": broker_url,
            "PONT_ENV": "development",  # tests use the development secrets, explicitly
            "PONT_RETRY_DELAYS": "0.05,0.1,0.2",
            "PONT_OUTBOX_POLL_SECONDS": "0.2",
            "PONT_LOG_LEVEL": "WARNING",
        }
        settings = Settings.from_env(service, env, http_port=overrides.pop("http_port", 0))
        return dataclasses.replace(settings, database_url=database_url, **overrides)

    return make


@pytest.fixture
def start_service():
    """Start a nameko service class under a unique name; stopped when the test ends."""
    containers = []

    def start(service_cls, settings: Settings, *, name: str | None = None, extra_config: dict | None = None):
        name = name or settings.service
        cls = type(service_cls.__name__, (service_cls,), {"name": name})
        config = {**settings.nameko_config(), **(extra_config or {})}
        if settings.http_port == 0:
            config["WEB_SERVER_ADDRESS"] = web_address()
        container = ServiceContainer(cls, config)
        container.start()
        containers.append(container)
        return container

    yield start
    for container in reversed(containers):
        container.stop()
        delete_queues(container)


def delete_queues(container) -> None:
    """Remove a test service's queues (events, RPC, dead letters, delays) and its own retry exchanges.

    Each is a quorum queue, a Raft group of the broker's: a test's service under a name of its own
    leaves none behind to pile up over a run (RabbitMQ 3.10 slowed to a halt under a few thousand).
    """
    service = container.service_name
    settings = container.config.get("PONT_SETTINGS")
    queues, exchanges = own_topology(service, settings.retry_delays if settings else ())
    queues += [queue_name_of(service, ep.method_name) for ep in container.entrypoints
               if isinstance(ep, EventConsumer)]  # a container that was never started (set up) too
    queues += [dead_letter_queue_name(service), f"rpc-{service}"]
    with Connection(container.config["AMQP_URI"]) as conn:
        channel = conn.default_channel
        for name in dict.fromkeys(queues):
            channel.queue_delete(name)
        for name in exchanges:
            channel.exchange_delete(name)


@pytest.fixture
def service_name():
    return random_name("svc")
