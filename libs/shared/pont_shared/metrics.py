"""Prometheus metrics shared by every service. Labels never carry personal data."""
from __future__ import annotations

import time

from nameko.extensions import DependencyProvider
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

ENTRYPOINT_CALLS = Counter(
    "pont_entrypoint_calls_total", "Entrypoint calls (HTTP, RPC, events) by outcome",
    ["service", "entrypoint", "outcome"],
)
ENTRYPOINT_LATENCY = Histogram(
    "pont_entrypoint_duration_seconds", "Entrypoint latency", ["service", "entrypoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
OUTBOX_BACKLOG = Gauge("pont_outbox_backlog_events", "Outbox rows not yet published", ["service"])
OUTBOX_OLDEST_AGE = Gauge(
    "pont_outbox_oldest_unsent_age_seconds", "Age of the oldest unpublished outbox row", ["service"]
)
OUTBOX_PUBLISHED = Counter("pont_outbox_published_events_total", "Events published and confirmed", ["service"])
OUTBOX_UNROUTABLE = Counter(
    "pont_outbox_unroutable_total", "Disclosures no queue would take (recipient not connected); retried later",
    ["service"],
)
PUBLISH_FAILURES = Counter(
    "pont_outbox_publish_failures_total", "Outbox publish attempts that failed (broker lost, nack)", ["service"]
)
EVENTS_HANDLED = Counter(
    "pont_events_handled_total", "Events consumed, by result (handled, duplicate, retried, dead_lettered)",
    ["service", "queue", "result"],
)
DEAD_LETTERS = Counter("pont_dead_letters_total", "Messages moved to a dead-letter queue", ["service", "queue"])


class EntrypointMetrics(DependencyProvider):
    """Counts and times every worker of the service it is declared on."""

    def setup(self):
        self._started = {}

    def worker_setup(self, worker_ctx):
        self._started[worker_ctx] = time.perf_counter()

    def worker_result(self, worker_ctx, result=None, exc_info=None):
        started = self._started.pop(worker_ctx, None)
        service = self.container.service_name
        name = worker_ctx.entrypoint.method_name
        outcome = "error" if exc_info is not None else "ok"
        ENTRYPOINT_CALLS.labels(service, name, outcome).inc()
        if started is not None:
            ENTRYPOINT_LATENCY.labels(service, name).observe(time.perf_counter() - started)

    def worker_teardown(self, worker_ctx):
        self._started.pop(worker_ctx, None)

    def get_dependency(self, worker_ctx):
        return None


def exposition() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST
