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
from pont_shared.messaging.topology import dead_letter_queue_name
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
    """Remove a test service's durable queues (events, dead letters, RPC) so later runs' messages don't pile up."""
    names = [queue_name_of(container.service_name, ep.method_name) for ep in container.entrypoints
             if isinstance(ep, EventConsumer)]  # a container that was never started (set up) too
    names += [dead_letter_queue_name(container.service_name), f"rpc-{container.service_name}"]
    with Connection(container.config["AMQP_URI"]) as conn:
        channel = conn.default_channel
        for name in names:
            channel.queue_delete(name)


@pytest.fixture
def service_name():
    return random_name("svc")
