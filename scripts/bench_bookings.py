"""`make bench-bookings`: bookings per second under contention, with one copy of each service and with
`PONT_REPLICAS` copies (default 2), printed side by side.

What is measured: concurrent clients (one HTTP connection each) race through the public API
(`POST /api/v1/appointments`) for the places of one clinic, so most requests meet a locked slot
row. Every booking is a real one: the gateway's RPC to bookings, the slot lock, the child-overlap
check, the exclusion constraints, the outbox row, the commit. For each run: bookings/s and
requests/s over the counted requests, p50/p99 of each request's time (sent → answer read),
errors (answers neither 201 booked nor 409 full, and requests that failed), and the CPU spent per
booking (the CPU of every request, the refused ones included, over the bookings made).

How: the gateway and bookings run as processes of their own (`python -m
pont_shared.operations.runner`, as `make start` runs them), N copies of each as `PONT_REPLICAS=N
make start` runs them (`stack.replicated`: the copies share the database and the queues, only the
port differs), on a fresh PostgreSQL database and a RabbitMQ virtual host of their own for each
run. Client c sends to gateway copy c % N; the gateways' RPCs reach the bookings copies as
competing consumers. A warm-up of one request per client is not counted and undone (its
appointments deleted, the slots emptied). The run with one copy comes first, then the one with N.

Where the CPU goes, from `/proc` before and after the counted requests: the gateway copies and
the bookings copies (`/proc/<pid>/stat`), this process (the clients), PostgreSQL's backends
serving the run's database, the whole RabbitMQ broker (`beam.smp`, shared with anything else
using it), and the whole machine (`/proc/stat`), whose rest is everything else, other work on
the machine included: the load average before each run is printed. N copies can use no more
than the cores the machine has spare (2 on the development machine): the ratio says what they add.

A run whose database disagrees with its answers (booked rows not the 201s, a slot over capacity)
fails the bench, after the table.

    PONT_REPLICAS=2 .venv/bin/python scripts/bench_bookings.py [--requests 1200] [--concurrency 50] \\
        [--slots 30] [--capacity 30]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import requests
from bench_processes import cpu_seconds, start_services
from sqlalchemy import create_engine, text

from pont_shared.identity import make_upn
from pont_shared.operations.stack import SERVICE_CLASSES, replicated
from pont_shared.testing import bearer, free_port_run, fresh_database, own_vhost

PROVIDER = "health:bench"
HEADERS = bearer("bench-nurse", PROVIDER, ["school_nurse"])
CPU_KINDS = {"gateway": "gateway (all copies)", "bookings": "bookings (all copies)",
             "clients": "clients (this process)", "postgres": "PostgreSQL backends",
             "rabbitmq": "RabbitMQ (whole broker)", "rest": "rest of the machine", "machine": "machine total"}


@dataclass
class Run:
    copies: int
    load: str                       # /proc/loadavg (1, 5, 15 min) before the run
    elapsed: float                  # s, the counted requests
    answers: list[tuple[int | str, float]]   # (HTTP status or the failure's name, seconds) per counted request
    cpu: dict[str, float]           # CPU seconds during the counted requests, by CPU_KINDS
    cpu_by_copy: dict[str, float]   # CPU seconds during the counted requests, by process
    booked_rows: int
    slots_over_capacity: int

    def count(self, *statuses: int) -> int:
        return sum(1 for status, _ in self.answers if status in statuses)

    @property
    def booked(self) -> int:
        return self.count(201)

    @property
    def errors(self) -> int:
        return len(self.answers) - self.count(201, 409)

    def latency_ms(self, p: int) -> float:
        ordered = sorted(seconds * 1000 for _, seconds in self.answers)
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1200)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--slots", type=int, default=30, help="slots in the clinic (fewer: more contention)")
    parser.add_argument("--capacity", type=int, default=30, help="places per slot")
    args = parser.parse_args()
    replicas = int(os.environ.get("PONT_REPLICAS", "2"))
    if replicas < 1:
        raise SystemExit("PONT_REPLICAS must be 1 or more")

    runs = [measure(copies, args) for copies in sorted({1, replicas})]
    report(runs, args)
    places = args.slots * args.capacity
    for run in runs:
        if run.booked_rows != run.booked or run.slots_over_capacity or \
                run.booked + run.errors < min(places, args.requests):
            raise SystemExit(f"inconsistent with {run.copies} copies: the database does not agree with the answers")


def measure(copies: int, args) -> Run:
    """One run with `copies` copies of the gateway and of bookings, from a fresh database and virtual host."""
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    with ExitStack() as stack:
        logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pont_bench_bookings_")))
        url = stack.enter_context(fresh_database("pont_bench_bookings"))
        env = {**os.environ, "PONT_ENV": "development", "PONT_LOG_LEVEL": "WARNING", "PONT_DATA_DIR": str(logs),
               "AMQP_URI": stack.enter_context(own_vhost("pont_bench_bookings")),
               "PONT_MAX_WORKERS": "60"}   # above the clients' 50, so none waits for a worker
        base = free_port_run(2 * copies)
        plan = [(name, [SERVICE_CLASSES[name], "--port", str(port)], port)
                for port, name in enumerate(("bookings", "gateway"), start=base)]
        processes = replicated(plan, copies, port_step=2)
        pids = start_services(stack, processes, env, logs, {"bookings": url})
        kinds = {name: service for name, service, _, _ in processes}
        gateways = [f"http://127.0.0.1:{port}/api/v1" for _, service, _, port in processes if service == "gateway"]
        engine = create_engine(url)
        stack.callback(engine.dispose)

        slot_ids = schedule(gateways[0], args.slots, args.capacity)
        sessions = [stack.enter_context(requests.Session()) for _ in range(args.concurrency)]
        clients(sessions, gateways, slot_ids, range(900_000, 900_000 + args.concurrency))   # warm-up
        with engine.begin() as db:
            db.execute(text("DELETE FROM appointments"))
            db.execute(text("UPDATE slots SET booked = 0"))

        before = cpu_snapshot(pids, engine)
        started = time.perf_counter()
        answers = clients(sessions, gateways, slot_ids, range(args.requests))
        elapsed = time.perf_counter() - started
        after = cpu_snapshot(pids, engine)
        with engine.connect() as db:
            booked_rows = db.execute(text("SELECT count(*) FROM appointments WHERE status = 'booked'")).scalar()
            over = db.execute(text("SELECT count(*) FROM slots WHERE booked > capacity")).scalar()

    used = {key: seconds - before.get(key, 0.0) for key, seconds in after.items()}
    cpu = dict.fromkeys(CPU_KINDS, 0.0)
    for (kind, _), seconds in used.items():
        cpu[kinds.get(kind, kind)] += seconds
    cpu["rest"] = cpu["machine"] - sum(seconds for kind, seconds in cpu.items() if kind not in ("rest", "machine"))
    return Run(copies, load, elapsed, answers, cpu, {name: used[(name, pid)] for name, pid in pids.items()},
               booked_rows, over)


def schedule(api: str, slots: int, capacity: int) -> list[str]:
    """A clinic of `slots` ten-minute slots with `capacity` places each; its slots' ids."""
    response = requests.post(f"{api}/sessions", headers=HEADERS, timeout=30, json={
        "site": "school:6612001", "room": f"Bench room {uuid.uuid4().hex[:6]}", "service": "school_nursing",
        "date": "2027-03-02", "start": "08:00", "end": f"{8 + slots // 6:02d}:{(slots % 6) * 10:02d}",
        "slot_minutes": 10, "capacity_per_slot": capacity})
    response.raise_for_status()
    return [slot["id"] for slot in response.json()["slots"]]


def clients(sessions: list[requests.Session], gateways: list[str], slot_ids: list[str],
            numbers: range) -> list[tuple[int | str, float]]:
    """Booking n (a child of its own, slot n % slots) for each n in `numbers`, each taken by the next free
    client; client c on gateway copy c % copies. (status or failure, seconds) per booking."""
    work, lock = iter(numbers), threading.Lock()
    answers: list[tuple[int | str, float]] = []

    def client(c: int) -> None:
        session, api = sessions[c], gateways[c % len(gateways)]
        while True:
            with lock:
                n = next(work, None)
            if n is None:
                return
            body = {"slot_id": slot_ids[n % len(slot_ids)], "child": {
                "upn": make_upn(10_000_000 + n), "given_name": "Bench", "family_name": "Pupil",
                "date_of_birth": "2015-01-01"}}
            started = time.perf_counter()
            try:
                status = session.post(f"{api}/appointments", headers=HEADERS, json=body, timeout=60).status_code
            except requests.RequestException as exc:
                status = type(exc).__name__
            answers.append((status, time.perf_counter() - started))

    with ThreadPoolExecutor(len(sessions)) as pool:
        list(pool.map(client, range(len(sessions))))
    return answers


def cpu_snapshot(pids: dict[str, int], engine) -> dict[tuple[str, int], float]:
    """CPU seconds so far, by (process name or kind, pid): the services, this process, the database's
    backends, RabbitMQ's Erlang VM if it runs here, and the whole machine (pid 0)."""
    with engine.connect() as db:
        backends = db.execute(text("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                                   "AND pid <> pg_backend_pid()")).scalars().all()
    watched = [*pids.items(), ("clients", os.getpid()), *(("postgres", pid) for pid in backends),
               *(("rabbitmq", pid) for pid in named("beam.smp"))]
    snapshot = {("machine", 0): machine_cpu_seconds()}
    for key in watched:
        try:
            snapshot[key] = cpu_seconds(key[1])
        except OSError:   # a backend that has just closed
            continue
    return snapshot


def named(command: str) -> list[int]:
    """The pids of this machine's processes running `command`."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().strip() == command:
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def machine_cpu_seconds() -> float:
    """The CPU time every core of this machine has spent busy (`/proc/stat`: all but idle and iowait)."""
    user, nice, system, idle, iowait, irq, softirq, steal = map(int, Path("/proc/stat").read_text().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def report(runs: list[Run], args) -> None:
    places = args.slots * args.capacity
    print(f"bookings bench: {args.requests} requests after {args.concurrency} not counted, {args.concurrency} "
          f"concurrent clients (client c on gateway copy c % copies), {args.slots} slots x {args.capacity} places "
          f"= {places} places; {os.cpu_count()} cores")
    rows: list[tuple[str, list[float | str], str]] = [
        ("load average before (1, 5, 15 min)", [run.load for run in runs], ""),
        ("booked (201)", [run.booked for run in runs], "{:.0f}"),
        ("full (409)", [run.count(409) for run in runs], "{:.0f}"),
        ("errors (other answers, failures)", [run.errors for run in runs], "{:.0f}"),
        ("elapsed, s", [run.elapsed for run in runs], "{:.2f}"),
        ("bookings/s", [run.booked / run.elapsed for run in runs], "{:.0f}"),
        ("requests/s", [len(run.answers) / run.elapsed for run in runs], "{:.0f}"),
        ("latency p50, ms", [run.latency_ms(50) for run in runs], "{:.1f}"),
        ("latency p99, ms", [run.latency_ms(99) for run in runs], "{:.1f}"),
        ("cores busy (machine CPU s / elapsed s)", [run.cpu["machine"] / run.elapsed for run in runs], "{:.2f}"),
    ]
    rows += [(f"CPU per booking, ms: {label}", [run.cpu[kind] * 1000 / max(run.booked, 1) for run in runs], "{:.2f}")
             for kind, label in CPU_KINDS.items()]
    headings = [f"{run.copies} cop{'y' if run.copies == 1 else 'ies'}" for run in runs]
    ratio = len(runs) == 2
    width = max(len(label) for label, _, _ in rows)
    print(f"  {'':{width}}  " + "  ".join(f"{heading:>14}" for heading in headings)
          + (f"  {f'{runs[1].copies}/1':>6}" if ratio else ""))
    for label, values, form in rows:
        cells = [form.format(value) if form else str(value) for value in values]
        line = f"  {label:{width}}  " + "  ".join(f"{cell:>14}" for cell in cells)
        if ratio and form and values[0]:
            line += f"  {values[1] / values[0]:6.2f}"
        print(line)
    for run in runs:
        print(f"  CPU by process with {headings[runs.index(run)]}, s: "
              + ", ".join(f"{name} {seconds:.1f}" for name, seconds in run.cpu_by_copy.items()))


if __name__ == "__main__":
    main()
