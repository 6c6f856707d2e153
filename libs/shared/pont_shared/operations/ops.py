"""`/health`, `/ready` and `/metrics` on every service, plus per-worker metrics and log context."""
from __future__ import annotations

import json

from kombu import Connection
from nameko.extensions import DependencyProvider
from nameko.web.handlers import http
from sqlalchemy import text
from werkzeug.wrappers import Response

from pont_shared.messaging.consumer import EventConsumer
from pont_shared.messaging.dependencies import LogContext, UnitOfWorkProvider
from pont_shared.messaging.rpc import Rpc
from pont_shared.metrics import EntrypointMetrics, exposition


class Readiness(DependencyProvider):
    """Answers whether the broker and (where the service has one) its database are reachable, and
    whether (where it has them) its event and RPC consumers are attached: after a broker outage
    a service is ready again only once it consumes again."""

    def get_dependency(self, worker_ctx):
        return self.check

    def check(self) -> dict[str, bool]:
        settings = self.container.config["PONT_SETTINGS"]
        checks = {"broker": broker_reachable(settings.amqp_uri)}
        for provider in self.container.dependencies:
            if isinstance(provider, UnitOfWorkProvider):
                checks["database"] = _database_reachable(provider.engine)
        consumers = {entrypoint.queue_consumer for entrypoint in self.container.entrypoints
                     if isinstance(entrypoint, EventConsumer)}
        consumers |= {entrypoint.rpc_consumer.queue_consumer for entrypoint in self.container.entrypoints
                      if isinstance(entrypoint, Rpc)}
        if consumers:
            checks["consumers"] = all(consumer.consuming for consumer in consumers)
        return checks


def broker_reachable(uri: str) -> bool:
    try:
        with Connection(uri, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1)
        return True
    except Exception:
        return False


def _database_reachable(engine) -> bool:
    try:
        with engine.connect() as db:
            db.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


class OpsEndpoints:
    """Mix into a nameko service class to serve the operational endpoints."""

    readiness = Readiness()
    entrypoint_metrics = EntrypointMetrics()
    log = LogContext()

    @http("GET", "/health")
    def health(self, request):
        return _json(200, {"status": "ok", "service": self.name})

    @http("GET", "/ready")
    def ready(self, request):
        checks = self.readiness()
        status = 200 if all(checks.values()) else 503
        return _json(status, {"ready": status == 200, "checks": checks})

    @http("GET", "/metrics")
    def metrics(self, request):
        body, content_type = exposition()
        return Response(body, status=200, content_type=content_type)


def _json(status: int, body: dict) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")
