"""`make bench-bookings`: bookings per second under contention, and p50/p99 latency.

Starts the bookings service and the gateway in this process against a fresh PostgreSQL
database and the real broker, schedules a clinic, then has many concurrent clients (one
HTTP connection each) race to book its slots — so most requests meet a locked slot row.
Every booking is a real one: slot lock, child-overlap check, exclusion constraints, the
outbox row, the commit.

    .venv/bin/python scripts/bench_bookings.py [--requests 1200] [--concurrency 50] [--slots 30] [--capacity 30]
"""
from __future__ import annotations

import warnings

warnings.filterwarnings("ignore", message=".*Eventlet is deprecated.*")

import eventlet  # noqa: E402

eventlet.monkey_patch()

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import logging  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402

import requests  # noqa: E402
from nameko.containers import ServiceContainer  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from bookings.service import BookingsService  # noqa: E402
from gateway.service import GatewayService  # noqa: E402
from pont_shared.config import Settings  # noqa: E402
from pont_shared.identity import make_upn  # noqa: E402
from pont_shared.testing import AMQP_URI, bearer, fresh_database, http_url, random_name, web_address  # noqa: E402
from pont_shared.testing.fixtures import delete_queues  # noqa: E402

PROVIDER = "health:bench"


def start(cls, service: str, name: str, database_url: str, extra: dict | None = None) -> ServiceContainer:
    env = {"AMQP_URI": AMQP_URI, "PONT_LOG_LEVEL": "WARNING", "PONT_MAX_WORKERS": "60"}
    settings = dataclasses.replace(Settings.from_env(service, env, http_port=0), database_url=database_url)
    config = {**settings.nameko_config(), "WEB_SERVER_ADDRESS": web_address(), **(extra or {})}
    container = ServiceContainer(type(cls.__name__, (cls,), {"name": name}), config)
    container.start()
    return container


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1200)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--slots", type=int, default=30, help="slots in the clinic (fewer: more contention)")
    parser.add_argument("--capacity", type=int, default=30, help="places per slot")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.disable(logging.CRITICAL)  # refusals (409) are expected here, not news

    with fresh_database("pont_bench_bookings") as url:
        bookings_name = random_name("bookings")
        bookings = start(BookingsService, "bookings", bookings_name, url)
        gateway = start(GatewayService, "gateway", random_name("gateway"), "sqlite://",
                        {"PONT_BOOKINGS_SERVICE": bookings_name})
        base = http_url(gateway)
        headers = {**bearer("bench-nurse", PROVIDER, ["school_nurse"]), "Content-Type": "application/json"}
        try:
            session = requests.post(base + "/api/v1/sessions", headers=headers, timeout=30, json={
                "site": "school:6612001", "room": f"Bench room {uuid.uuid4().hex[:6]}", "service": "school_nursing",
                "date": "2027-03-02", "start": "08:00", "end": f"{8 + args.slots // 6:02d}:{(args.slots % 6) * 10:02d}",
                "slot_minutes": 10, "capacity_per_slot": args.capacity})
            session.raise_for_status()
            slot_ids = [slot["id"] for slot in session.json()["slots"]]
            places = len(slot_ids) * args.capacity
            clients = eventlet.queue.LightQueue()
            for _ in range(args.concurrency):
                clients.put(requests.Session())

            def book(n: int) -> tuple[int, float]:
                client = clients.get()
                try:
                    started = time.perf_counter()
                    response = client.post(base + "/api/v1/appointments", headers=headers, timeout=60, json={
                        "slot_id": slot_ids[n % len(slot_ids)],
                        "child": {"upn": make_upn(10_000_000 + n), "given_name": "Bench", "family_name": "Pupil",
                                  "date_of_birth": "2015-01-01"}})
                    return response.status_code, time.perf_counter() - started
                finally:
                    clients.put(client)

            # warm-up: connections, worker pools, prepared paths (not counted)
            list(eventlet.GreenPool(args.concurrency).imap(lambda n: book(900_000 + n), range(args.concurrency)))
            with create_engine(url).begin() as conn:
                conn.execute(text("DELETE FROM appointments"))
                conn.execute(text("UPDATE slots SET booked = 0"))

            started = time.perf_counter()
            results = list(eventlet.GreenPool(args.concurrency).imap(book, range(args.requests)))
            elapsed = time.perf_counter() - started
        finally:
            gateway.stop()
            bookings.stop()
            delete_queues(bookings)
        engine = create_engine(url)
        with engine.connect() as conn:
            in_db = conn.execute(text("SELECT count(*) FROM appointments WHERE status = 'booked'")).scalar()
            over = conn.execute(text("SELECT count(*) FROM slots WHERE booked > capacity")).scalar()
        engine.dispose()

    statuses: dict[int, int] = {}
    for status, _ in results:
        statuses[status] = statuses.get(status, 0) + 1
    latencies_ms = [latency * 1000 for _, latency in results]
    booked = statuses.get(201, 0)
    print(f"bookings bench: {args.requests} requests, {args.concurrency} concurrent clients, "
          f"{len(slot_ids)} slots x {args.capacity} places = {places} places")
    print(f"  answers: {dict(sorted(statuses.items()))}  (201 booked, 409 full)")
    print(f"  database: {in_db} booked appointments, {over} slots over capacity")
    print(f"  elapsed {elapsed:.2f} s: {args.requests / elapsed:.0f} requests/s, {booked / elapsed:.0f} bookings/s")
    print(f"  latency ms: p50 {percentile(latencies_ms, 50):.1f}  p99 {percentile(latencies_ms, 99):.1f}  "
          f"mean {statistics.mean(latencies_ms):.1f}  max {max(latencies_ms):.1f}")
    if in_db != booked or over or booked != min(places, args.requests):
        raise SystemExit("inconsistent: the database does not agree with the answers")


if __name__ == "__main__":
    main()
