"""`make bench-latency`: how long from a referral POSTed to the public API until it is in health's own store.

What is measured: for each referral, from the moment this process sends `POST /api/v1/referrals`
(gateway) to the moment the referral's row is committed in the receiving agency's own store —
the `disclosures` table of health's `agency_link`, on its own PostgreSQL database. The path in
between is the whole platform's: gateway → referrals (RPC) → consent's rules and hash-chained
ledger (RPC) → referrals' commit with its outbox row → the outbox relay → RabbitMQ (publisher
confirms) → health's agency_link → its commit.

How: every service is its own process (`python -m pont_shared.operations.runner`, as `make start` runs them):
gateway, consent, referrals and health's agency_link (the school's is not on this path), each on a
fresh PostgreSQL database (the gateway has none), on a RabbitMQ virtual host of their own. Set-up,
not timed: an information-sharing agreement and one parental consent per child, through the
public API, so each referral is allowed and answered `sent`. Then referrals are sent open loop at
BENCH_LATENCY_RATE a second (each started on its schedule by a pool of threads, not when the last
returned) for BENCH_LATENCY_WARMUP_SECONDS (not counted) plus BENCH_LATENCY_SECONDS (counted), each
with an Idempotency-Key of its own as the staff page sends it (BENCH_LATENCY_KEYED=0: none).

The arrival clock: once health's agency_link has created its tables, the bench adds an AFTER
INSERT trigger to its `disclosures` table that does `pg_notify('bench_latency', subject_id || ' '
|| clock_timestamp())`. PostgreSQL delivers a notification only when the inserting transaction
commits, so a listener — a process of its own that does nothing but wait in `select()` on a
`LISTEN` connection and read `time.time()` when the socket wakes — sees the moment the row exists
for any reader. Its overhead is measured on every run and printed: NOTIFYs sent from another
connection (before the run, and during it from a process of its own), sent → seen by the listener,
which includes that connection's own round trip and commit. On the 2-core development machine:
p50 0.1 ms idle, 0.2-0.3 ms during the run (p99 0.5 ms idle, 1.5 ms during the run, when every
process shares the two cores), so the figures are if anything that much high. The trigger's cost
in the agency's insert is within noise (measured apart: ~200 µs a committed insert with or without
it). The trigger's own clock (the row inserted, before its commit) is printed too. All times are
this host's wall clock (`time.time()`, PostgreSQL's `clock_timestamp()`): one clock, no skew.

Failures: a request that errs or is not answered 201, a referral answered but not `sent`, or one
not in the store 30 s after the last request, is counted as failed and not in the latencies.

Nothing is asserted; the targets are p50 <= 15 ms and p99 <= 60 ms at 20 referrals/s. The relay
settings (PONT_OUTBOX_POLL_SECONDS, PONT_OUTBOX_BATCH, ...) are taken from the
environment as the services would, and printed.

    BENCH_LATENCY_RATE=20 BENCH_LATENCY_SECONDS=30 BENCH_LATENCY_WARMUP_SECONDS=3 \\
        .venv/bin/python scripts/bench_latency.py
"""
from __future__ import annotations

import math
import multiprocessing
import os
import select
import tempfile
import threading
import time
import uuid
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from datetime import date, timedelta
from pathlib import Path

import psycopg2
import psycopg2.extensions
import requests
from bench_processes import cpu_seconds, start_services

from pont_shared.auth import mint
from pont_shared.config import safe_name
from pont_shared.identity import make_upn
from pont_shared.operations.stack import SERVICE_CLASSES, replicated
from pont_shared.testing import free_port_run, fresh_database, own_vhost, wait_until

RATE = float(os.environ.get("BENCH_LATENCY_RATE", "20"))
SECONDS = float(os.environ.get("BENCH_LATENCY_SECONDS", "30"))
WARMUP = float(os.environ.get("BENCH_LATENCY_WARMUP_SECONDS", "3"))
# each referral with an Idempotency-Key of its own, as the staff page and retrying clients send it
KEYED = os.environ.get("BENCH_LATENCY_KEYED", "1") == "1"
SECRET = "bench-latency-" + uuid.uuid4().hex
SCHOOL, HEALTH = "school:6612001", "health:cardiff-vale"
HEALTH_LINK = f"agency_link_{safe_name(HEALTH)}"
CHANNEL = "bench_latency"
CATEGORIES = ["contact", "health_wellbeing"]
RELAY_SETTINGS = {"PONT_OUTBOX_POLL_SECONDS": "0.5", "PONT_OUTBOX_BATCH": "500",
                  "PONT_MAX_WORKERS": "20"}   # the services' defaults (README, "Configuration")

TRIGGER = f"""
CREATE FUNCTION bench_latency_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{CHANNEL}', NEW.subject_id || ' ' || extract(epoch FROM clock_timestamp())::text);
    RETURN NEW;
END $$;
CREATE TRIGGER bench_latency AFTER INSERT ON disclosures FOR EACH ROW EXECUTE FUNCTION bench_latency_notify();
"""


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg2://", "postgresql://")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def spread(values_ms: list[float], *ps: int) -> str:
    if not values_ms:
        return "(none)"
    return "  ".join(f"p{p} {percentile(values_ms, p):.1f}" for p in ps) + f"  max {max(values_ms):.1f}"


# --- the listener: its own process, so nothing in this one (threads, the GIL) delays its clock ---

def listen(dsn: str, control) -> None:
    """Wait on LISTEN; for each notification, (payload, time.time() when the socket woke).
    Sends them all over `control` when told to stop."""
    db = psycopg2.connect(dsn)
    db.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
    db.cursor().execute(f"LISTEN {CHANNEL}")
    control.send("listening")
    seen: list[tuple[str, float]] = []
    while True:
        readable, _, _ = select.select([db, control], [], [], 1.0)
        woke = time.time()
        if db in readable:
            db.poll()
            seen.extend((note.payload, woke) for note in db.notifies)
            db.notifies.clear()
        if control in readable:
            control.recv()
            control.send(seen)
            db.close()
            return


@contextmanager
def listener(dsn: str):
    """The listener process; yields `collect()`, which stops it and returns what it saw."""
    ours, theirs = multiprocessing.Pipe()
    process = multiprocessing.get_context("spawn").Process(target=listen, args=(dsn, theirs), daemon=True)
    process.start()
    if not ours.poll(30) or ours.recv() != "listening":
        raise RuntimeError("the LISTEN process did not start")

    def collect() -> list[tuple[str, float]]:
        ours.send("stop")
        return ours.recv()

    try:
        yield collect
    finally:
        process.join(timeout=10)
        if process.is_alive():
            process.terminate()


def calibrate(dsn: str, label: str, count: int, pause: float) -> list[tuple[str, float]]:
    """`count` NOTIFYs committed from another connection, `pause` s apart, with when each was sent:
    the arrival clock's overhead (including that connection's own round trip)."""
    db = psycopg2.connect(dsn)
    db.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
    cursor = db.cursor()
    sent = []
    for n in range(count):
        payload = f"calibration-{label}-{n}"
        sent.append((payload, time.time()))
        cursor.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
        time.sleep(pause)
    db.close()
    return sent


# --- the services, each its own process ---

def start_stack(stack: ExitStack, logs: Path) -> tuple[str, dict[str, str], dict[str, int]]:
    """Health's agency_link, consent, referrals and the gateway; the gateway's URL, the databases and the pids."""
    broker = stack.enter_context(own_vhost("pont_bench_latency"))
    env = {**os.environ, "PONT_ENV": "development", "AMQP_URI": broker, "PONT_JWT_SECRET": SECRET,
           "PONT_AGENCIES": HEALTH,
           "PONT_LOG_LEVEL": "WARNING", "PONT_DATA_DIR": str(logs)}
    databases = {name: stack.enter_context(fresh_database(f"pont_bench_latency_{name}"))
                 for name in ("agency", "consent", "referrals")}
    base = free_port_run(4)
    plan = [(HEALTH_LINK, ["agency_link.service:AgencyLinkService", "--name", HEALTH_LINK, "--org", HEALTH,
                           "--port", str(base)], base)]
    plan += [(name, [SERVICE_CLASSES[name], "--port", str(port)], port)
             for port, name in enumerate(("consent", "referrals", "gateway"), start=base + 1)]
    pids = start_services(stack, replicated(plan, 1, 0), env, logs, {
        HEALTH_LINK: databases["agency"], "consent": databases["consent"], "referrals": databases["referrals"]})
    return f"http://127.0.0.1:{base + 3}/api/v1", databases, pids


def scalar(url: str, query: str) -> int:
    """The one value `query` reads from the database at `url`."""
    with psycopg2.connect(libpq(url)) as db, db.cursor() as cursor:
        cursor.execute(query)
        value = cursor.fetchone()[0]
    db.close()
    return value


def database_bytes(url: str) -> int:
    return scalar(url, "SELECT pg_database_size(current_database())")


def token(sub: str, org: str, *roles: str) -> dict:
    return {"Authorization": f"Bearer {mint(sub, org, list(roles), SECRET)}"}


def pupil(serial: int) -> dict:
    return {"upn": make_upn(serial), "given_name": "Bench", "family_name": f"Pupil{serial}",
            "date_of_birth": "2015-03-14"}


def set_up(api: str, children: list[dict], consent_url: str) -> None:
    """The agreement and one consent per child, through the API; then until consent's outbox is drained."""
    admin, staff = token("bench-admin", "local_authority:cardiff", "admin"), token("bench-staff", SCHOOL,
                                                                                   "school_staff")
    created = requests.post(f"{api}/agreements", headers=admin, timeout=30, json={
        "parties": [SCHOOL, HEALTH], "purposes": ["referral"], "categories": CATEGORIES,
        "valid_from": str(date.today() - timedelta(days=1)),
        "valid_to": str(date.today() + timedelta(days=365))})
    created.raise_for_status()
    for party in (SCHOOL, HEALTH):
        requests.post(f"{api}/agreements/{created.json()['id']}/approve", timeout=30,
                      headers=token("bench-admin", party, "admin")).raise_for_status()
    local = threading.local()

    def consent(child: dict) -> None:
        client = local.__dict__.setdefault("client", requests.Session())
        client.post(f"{api}/consents", headers=staff, timeout=30, json={
            "child": child, "given_by": {"name": "Bench Parent", "relationship": "parent"},
            "recipients": [HEALTH], "purposes": ["referral"], "categories": CATEGORIES,
            "evidence": "written"}).raise_for_status()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(consent, children))
    with psycopg2.connect(libpq(consent_url)) as db, db.cursor() as cursor:
        def drained() -> bool:
            cursor.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL")
            unsent = cursor.fetchone()[0]
            db.rollback()
            return unsent == 0
        wait_until(drained, timeout=60, interval=0.2, message="consent's outbox did not drain")
    db.close()
    time.sleep(1.0)   # referrals handles the consent.granted events (no held referral: nothing to do)


def run(api: str, children: list[dict]) -> list[dict]:
    """Open loop: referral n is started at start + n / RATE, whatever the earlier ones are doing."""
    staff = token("bench-staff", SCHOOL, "school_staff")
    local = threading.local()
    results: list[dict] = [{} for _ in children]

    def refer(n: int, due: float) -> None:
        client = local.__dict__.setdefault("client", requests.Session())
        body = {"child": children[n], "to_org": HEALTH, "service": "school_nursing", "reason": "wellbeing",
                "details": "Frequent headaches in class", "urgency": "routine", "share": CATEGORIES}
        result = results[n]
        result["sent"] = time.time()
        result["lag"] = result["sent"] - due
        try:
            headers = {**staff, "Idempotency-Key": f"bench-latency-{n}"} if KEYED else staff
            response = client.post(f"{api}/referrals", json=body, headers=headers, timeout=30)
            result["answered"] = time.time()
            result["code"] = response.status_code
            if response.status_code == 201:
                result["id"], result["status"] = response.json()["id"], response.json()["status"]
        except requests.RequestException as exc:
            result["code"] = type(exc).__name__

    with ThreadPoolExecutor(64) as pool:
        start = time.time() + 0.1
        for n in range(len(children)):
            due = start + n / RATE
            if (ahead := due - time.time()) > 0:
                time.sleep(ahead)   # Linux wakes within ~0.1 ms; printed as "sender behind schedule"
            pool.submit(refer, n, due)
    return results


def in_store(agency_url: str) -> int:
    return scalar(agency_url, "SELECT count(*) FROM disclosures")


def main() -> None:
    warmup_count, measured_count = math.ceil(RATE * WARMUP), math.ceil(RATE * SECONDS)
    children = [pupil(1_000 + n) for n in range(warmup_count + measured_count)]
    with ExitStack() as stack:
        logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pont_bench_latency_")))
        api, databases, pids = start_stack(stack, logs)
        started = time.perf_counter()
        set_up(api, children, databases["consent"])
        print(f"set-up (not timed): agreement and {len(children)} consents through the API in "
              f"{time.perf_counter() - started:.1f} s")
        with psycopg2.connect(libpq(databases["agency"])) as db, db.cursor() as cursor:
            cursor.execute(TRIGGER)
        db.close()
        collect = stack.enter_context(listener(libpq(databases["agency"])))
        idle = calibrate(libpq(databases["agency"]), "idle", 200, 0.005)
        # and during the run, from a process of its own (so this one's threads do not delay it)
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as calibrator:
            loaded_future = calibrator.submit(calibrate, libpq(databases["agency"]), "loaded",
                                              int(len(children) / RATE / 0.05), 0.05)
            time.sleep(0.5)   # the calibrating process started
            cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            size_before = {name: database_bytes(url) for name, url in databases.items()}
            results = run(api, children)
            loaded = loaded_future.result()
        expected = sum(1 for r in results if r.get("status") == "sent")
        try:
            wait_until(lambda: in_store(databases["agency"]) >= expected, timeout=30, interval=0.2)
        except TimeoutError:
            pass
        cpu_ms = {name: (cpu_seconds(pid) - cpu_before[name]) * 1000 / len(children) for name, pid in pids.items()}
        stored = {name: (database_bytes(url) - size_before[name]) / len(children) for name, url in databases.items()}
        time.sleep(0.5)
        seen = collect()

    arrivals: dict[str, tuple[float, float]] = {}   # subject_id -> (inserted by the trigger's clock, seen)
    calibration_seen: dict[str, float] = {}
    for payload, woke in seen:
        key, _, inserted = payload.partition(" ")
        if key.startswith("calibration-"):
            calibration_seen[key] = woke
        else:
            arrivals.setdefault(key, (float(inserted), woke))
    idle_ms = [(calibration_seen[p] - at) * 1000 for p, at in idle if p in calibration_seen]
    loaded_ms = [(calibration_seen[p] - at) * 1000 for p, at in loaded if p in calibration_seen]

    measured = results[warmup_count:]
    failed = [r for r in measured if r.get("code") != 201]
    not_sent = [r for r in measured if r.get("code") == 201 and r.get("status") != "sent"]
    lost = [r for r in measured if r.get("status") == "sent" and r["id"] not in arrivals]
    done = [r for r in measured if r.get("status") == "sent" and r["id"] in arrivals]
    latency = [(arrivals[r["id"]][1] - r["sent"]) * 1000 for r in done]
    inserted = [(arrivals[r["id"]][0] - r["sent"]) * 1000 for r in done]
    commit_gap = [(arrivals[r["id"]][1] - arrivals[r["id"]][0]) * 1000 for r in done]
    answered = [(r["answered"] - r["sent"]) * 1000 for r in measured if "answered" in r]
    lag = [r["lag"] * 1000 for r in measured if "lag" in r]
    codes: dict = {}
    for r in measured:
        codes[r.get("code")] = codes.get(r.get("code"), 0) + 1
    relay = ", ".join(f"{k}={os.environ.get(k, v)}" for k, v in RELAY_SETTINGS.items())

    print(f"latency bench: referrals at {RATE:g}/s open loop for {SECONDS:g} s after {WARMUP:g} s warm-up; "
          f"POST /api/v1/referrals -> the row in {HEALTH}'s agency_link store")
    print("  each with an Idempotency-Key of its own, as the staff page sends it" if KEYED else
          "  without an Idempotency-Key (BENCH_LATENCY_KEYED=0)")
    print(f"  services: gateway, consent, referrals, {HEALTH_LINK}, each its own process and database; {relay}")
    print(f"  measured {len(latency)} of {len(measured)} requests; failed {len(failed) + len(not_sent) + len(lost)} "
          f"(not 201: {len(failed)}, 201 but not sent: {len(not_sent)}, not in the store 30 s after the last: "
          f"{len(lost)}); answers {dict(sorted(codes.items(), key=str))}")
    print(f"  latency ms (POST sent -> row committed in health's store): {spread(latency, 50, 90, 99)}")
    print(f"  row inserted (trigger clock, before its commit), ms:         {spread(inserted, 50, 90, 99)}")
    print(f"  HTTP 201 answered, ms:                                       {spread(answered, 50, 90, 99)}")
    print(f"  insert -> commit seen by the listener, ms:                   {spread(commit_gap, 50, 99)}")
    print(f"  method overhead, NOTIFY sent from another connection -> seen by the listener, ms: "
          f"idle ({len(idle_ms)}) {spread(idle_ms, 50, 99)}; during the run ({len(loaded_ms)}) "
          f"{spread(loaded_ms, 50, 99)}")
    print(f"  sender behind schedule, ms: {spread(lag, 50, 99)}")
    print(f"  CPU per referral (warm-up included), ms: {sum(cpu_ms.values()):.1f} = "
          + ", ".join(f"{name} {ms:.1f}" for name, ms in cpu_ms.items()))
    print("  database growth per referral (pg_database_size, outbox and inbox rows included), KB: "
          + ", ".join(f"{name} {size / 1024:.1f}" for name, size in stored.items()))
    print("  targets (not asserted): p50 <= 15 ms, p99 <= 60 ms; before #14 (another machine, no "
          "Idempotency-Key, an idle platform): p50 67 ms, p99 278 ms")


if __name__ == "__main__":
    main()
