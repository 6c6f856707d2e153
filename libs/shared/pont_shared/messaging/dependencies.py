"""nameko DependencyProviders: the only place Pont builds database and broker clients."""
from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import structlog
from nameko.extensions import DependencyProvider, SharedExtension
from nameko.timer import Timer
from sqlalchemy import MetaData
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from pont_shared.contract.envelope import utcnow
from pont_shared.identity import child_ref
from pont_shared.messaging.consumer import EventConsumer
from pont_shared.messaging.db import MessagingTables, make_engine
from pont_shared.messaging.outbox import OutboxRelay
from pont_shared.messaging.uow import InboxKey, UnitOfWork
from pont_shared.operations.migrations import Migrations


class OutboxRelayExtension(SharedExtension):
    """Runs the service's outbox relay in a managed green thread."""

    relay: OutboxRelay | None = None

    def configure(self, engine: Engine, tables: MessagingTables) -> None:
        settings = self.container.config["PONT_SETTINGS"]
        self.relay = OutboxRelay(
            engine, tables.outbox, settings.amqp_uri, self.container.service_name,
            batch_size=settings.outbox_batch_size, poll_seconds=settings.outbox_poll_seconds,
            retention=timedelta(hours=settings.outbox_retention_hours),
        )

    def start(self):
        self._gt = self.container.spawn_managed_thread(self.relay.run, identifier="outbox_relay")

    def stop(self):
        self.relay.stop()
        self._gt.wait()

    def kill(self):
        if self.relay is not None:
            self.relay.stop()

    def wake(self, rows) -> None:
        self.relay.wake(rows)


class SchemaBehind(RuntimeError):
    """A service told not to migrate found its schema older than its code: it does not start."""


def migrate_schema(prepare: Callable[[Engine, MetaData], None], metadata: MetaData, settings,
                   runtime_engine: Engine | None = None) -> None:
    """Bring a service's schema to head with its `prepare`: as the schema's owner role where one is
    configured (`PONT_<SERVICE>_MIGRATE_DATABASE_URL`; the service then runs as its runtime role)."""
    owner_url = settings.migrate_database_url
    if runtime_engine is not None and (not owner_url or owner_url == settings.database_url):
        prepare(runtime_engine, metadata)
        return
    engine = make_engine(owner_url or settings.database_url)
    try:
        prepare(engine, metadata)
    finally:
        engine.dispose()


class UnitOfWorkProvider(DependencyProvider):
    """Hands each worker a `UnitOfWork` on the service's own database.

    For an event consumer's worker the unit of work carries the event's inbox key, so
    the handler's effect and the record that the event was handled commit together.
    `prepare` brings the schema up to date (migrations) before the service starts.
    """

    relay = OutboxRelayExtension()

    def __init__(self, metadata: MetaData, tables: MessagingTables,
                 prepare: Callable[[Engine, MetaData], None] | None = None):
        self.metadata = metadata
        self.tables = tables
        self.prepare = prepare or (lambda engine, metadata: metadata.create_all(engine))

    def setup(self):
        settings = self.container.config["PONT_SETTINGS"]
        self.source = f"/pont/{self.container.service_name}"
        self.engine = make_engine(settings.database_url, pool_size=max(5, settings.max_workers))
        if settings.migrate_at_start:
            migrate_schema(self.prepare, self.metadata, settings, self.engine)
        elif (behind := self.prepare.behind(self.engine) if isinstance(self.prepare, Migrations) else None):
            raise SchemaBehind(f"{self.container.service_name}: {behind}; run `pont-migrate` first "
                               "(PONT_MIGRATE_AT_START=false)")
        self.session_factory = sessionmaker(self.engine, expire_on_commit=False)
        self.relay.configure(self.engine, self.tables)

    def stop(self):
        self.engine.dispose()

    def get_dependency(self, worker_ctx) -> UnitOfWork:
        inbox_key = causation = consumer = None
        entrypoint = worker_ctx.entrypoint
        if isinstance(entrypoint, EventConsumer):
            consumer = entrypoint.queue_name
            if entrypoint.batch_size == 1:
                envelope = worker_ctx.args[0]
                inbox_key = InboxKey(consumer, envelope)
                causation = envelope.id
        return UnitOfWork(
            self.session_factory, self.tables, source=self.source, inbox_key=inbox_key,
            correlation_id=worker_ctx.data.get("correlation_id"), causation_id=causation,
            on_commit=self.relay.wake, consumer=consumer,
        )


class Clock(DependencyProvider):
    """The time now (UTC): the wall clock, or the callable under `PONT_CLOCK` in the nameko config.

    Deadlines, expiry and overdue checks take their time from here, so tests move time
    instead of waiting for it.
    """

    def setup(self):
        self.now = self.container.config.get("PONT_CLOCK") or utcnow

    def get_dependency(self, worker_ctx):
        return self.now


class Setting(DependencyProvider):
    """One value of the `Settings` read at start-up, e.g. `Setting("school_holidays")`."""

    def __init__(self, name: str, **kwargs):
        super().__init__(**kwargs)
        self.name = name

    def setup(self):
        self.value = getattr(self.container.config["PONT_SETTINGS"], self.name)

    def get_dependency(self, worker_ctx):
        return self.value


class ChildRefs(DependencyProvider):
    """`self.child_ref(upn)`: the platform pseudonym of a pupil, keyed with the configured secret."""

    def setup(self):
        self.secret = self.container.config["PONT_SETTINGS"].child_ref_secret

    def get_dependency(self, worker_ctx):
        return lambda upn: child_ref(upn, self.secret)


class ConfiguredTimer(Timer):
    """A nameko timer whose interval the container config may set under `config_key` (tests: shorter)."""

    def __init__(self, interval, config_key: str, **kwargs):
        self.config_key = config_key
        super().__init__(interval, **kwargs)

    def setup(self):
        self.interval = float(self.container.config.get(self.config_key, self.interval))
        super().setup()


every = ConfiguredTimer.decorator


class LogContext(DependencyProvider):
    """Binds service, entrypoint, event id and correlation id to every log line of a worker."""

    def worker_setup(self, worker_ctx):
        structlog.contextvars.clear_contextvars()
        context = {
            "service": self.container.service_name,
            "entrypoint": worker_ctx.entrypoint.method_name,
            "correlation_id": worker_ctx.data.get("correlation_id") or worker_ctx.call_id,
        }
        if isinstance(worker_ctx.entrypoint, EventConsumer):
            event = worker_ctx.args[0]
            if isinstance(event, list):
                context.update(batch_size=len(event), event_type=worker_ctx.entrypoint.event_model.TYPE)
            else:
                context.update(event_id=event.id, event_type=event.type)
        structlog.contextvars.bind_contextvars(**context)

    def worker_teardown(self, worker_ctx):
        structlog.contextvars.clear_contextvars()

    def get_dependency(self, worker_ctx):
        return structlog.get_logger(self.container.service_name)
