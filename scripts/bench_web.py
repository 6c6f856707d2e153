"""`make bench-web`: how long the web pages take to serve, with demonstration data behind them.

What is measured: for each page, the time from this process sending `GET` to the web service
until the whole HTML answer is read (localhost, one client at a time, keep-alive), which is
the web's server time plus its calls to the gateway and the gateway's RPCs to the services.

How: gateway, bookings, consent, transitions, the school's agency_link and web, each its own process
(`python -m pont_shared.operations.runner`, as `make start` runs them) on a fresh PostgreSQL
database and a RabbitMQ virtual host of their own, `PONT_ENV=development`. Set-up, not timed:
through the public API, the nurse schedules BENCH_WEB_SESSIONS sessions of 9 slots at the
school (the first yesterday, the others after it), books a pupil into every slot of the first
and records 3 of them as was-not-brought, which reach the DSL's review queue; the two schools
agree to share for transitions, the parents of a class of 28 consent, and the primary's
transition lead sends their records to the secondary. Then the nurse, the DSL and both
transition leads sign in through the development sign-in page and each page is fetched
BENCH_WEB_REQUESTS times (after 10 not counted). Prints p50/p95/max in milliseconds.
"""
from __future__ import annotations

import contextlib
import os
import re
import statistics
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import requests

from pont_shared.auth import mint
from pont_shared.config import DEV_JWT_SECRET, safe_name
from pont_shared.identity import make_upn
from pont_shared.testing import free_port_run, fresh_database, own_vhost, wait_until

ROOT = Path(__file__).resolve().parents[1]
SCHOOL, HEALTH, SECONDARY = "school:6612001", "health:cardiff-vale", "school:6614002"
CLASS_SIZE = 28
REQUESTS = int(os.environ.get("BENCH_WEB_REQUESTS", "200"))
SESSIONS = int(os.environ.get("BENCH_WEB_SESSIONS", "10"))


@contextlib.contextmanager
def process(spec: str, name: str, port: int, env: dict, *args: str):
    proc = subprocess.Popen([sys.executable, "-m", "pont_shared.operations.runner", spec, "--name", name,
                             "--port", str(port), *args], env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"{spec} exited with {proc.returncode}")
            try:
                return requests.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200
            except requests.RequestException:
                return False
        wait_until(ready, timeout=60, interval=0.2, message=f"{spec} did not become ready")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def api(gateway: str, method: str, path: str, token: str, body: dict | None = None) -> dict:
    response = requests.request(method, gateway + path, json=body, timeout=30,
                                headers={"Authorization": f"Bearer {token}"})
    response.raise_for_status()
    return response.json()


def seed(gateway: str) -> str:
    nurse = mint("demo-nurse", HEALTH, ["school_nurse"], DEV_JWT_SECRET)
    first = None
    for n in range(SESSIONS):
        day = date.today() - timedelta(days=1) + timedelta(days=n)
        session = api(gateway, "POST", "/api/v1/sessions", nurse, {
            "site": SCHOOL, "room": "Medical room", "service": "school_nursing", "date": day.isoformat(),
            "start": "09:00", "end": "12:00", "slot_minutes": 20, "capacity_per_slot": 1})
        first = first or session
    for index, slot in enumerate(first["slots"]):
        child = {"upn": make_upn(100000000 + index), "given_name": "Cerys", "family_name": "Jones",
                 "date_of_birth": "2015-03-14"}
        appointment = api(gateway, "POST", "/api/v1/appointments", nurse, {"slot_id": slot["id"], "child": child})
        if index < 3:
            api(gateway, "POST", f"/api/v1/appointments/{appointment['id']}/was-not-brought", nurse, {})
    dsl = mint("demo-dsl", SCHOOL, ["dsl", "school_staff"], DEV_JWT_SECRET)
    wait_until(lambda: len(api(gateway, "GET", "/api/v1/reviews", dsl)) == 3, timeout=30, interval=0.2,
               message="the was-not-brought did not reach the review queue")
    return first["id"]


def seed_transitions(gateway: str) -> None:
    """A class of 28, consented and sent from the primary (SCHOOL) to the secondary."""
    admin = mint("demo-admin", "local_authority:cardiff", ["admin"], DEV_JWT_SECRET)
    categories = ["education", "attendance", "aln", "health_wellbeing"]
    agreement = api(gateway, "POST", "/api/v1/agreements", admin, {
        "parties": [SCHOOL, SECONDARY], "purposes": ["transition"], "categories": categories,
        "valid_from": str(date.today() - timedelta(days=1)), "valid_to": str(date.today() + timedelta(days=400))})
    for party in (SCHOOL, SECONDARY):
        api(gateway, "POST", f"/api/v1/agreements/{agreement['id']}/approve",
            mint("demo-admin", party, ["admin"], DEV_JWT_SECRET), {})
    teacher = mint("demo-teacher", SCHOOL, ["school_staff"], DEV_JWT_SECRET)
    pupils = []
    for n in range(CLASS_SIZE):
        child = {"upn": make_upn(200000000 + n), "given_name": f"Disgybl{n}", "family_name": "Jones",
                 "date_of_birth": "2015-03-14"}
        api(gateway, "POST", "/api/v1/consents", teacher, {
            "child": child, "given_by": {"name": "Rhiant", "relationship": "parent"}, "recipients": [SECONDARY],
            "purposes": ["transition"], "evidence": "written", "categories": categories})
        pupils.append({"child": child, "sections": {
            "attendance": {"year": 2025, "sessions_possible": 380, "sessions_authorised": n % 9,
                           "sessions_unauthorised": n % 3},
            "wellbeing": {"notes": "Likes a quiet start to the day"}}})
    lead = mint("demo-lead", SCHOOL, ["transition_lead", "dsl"], DEV_JWT_SECRET)
    api(gateway, "POST", "/api/v1/transitions", lead, {"to_school": SECONDARY, "pupils": pupils, "send": True})


def signed_in(web: str, who: str) -> requests.Session:
    client = requests.Session()
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get(web + "/sign-in", timeout=10).text).group(1)
    client.post(web + "/sign-in", data={"user": who, "csrf": csrf}, timeout=10).raise_for_status()
    return client


def timed(client: requests.Session, url: str) -> list[float]:
    for _ in range(10):
        client.get(url, timeout=30).raise_for_status()
    took = []
    for _ in range(REQUESTS):
        started = time.perf_counter()
        response = client.get(url, timeout=30)
        _ = response.content
        took.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return took


def main() -> None:
    with contextlib.ExitStack() as stack:
        vhost = stack.enter_context(own_vhost("pont_bench_web"))
        bookings_db = stack.enter_context(fresh_database("pont_bench_web_bookings"))
        link_db = stack.enter_context(fresh_database("pont_bench_web_link"))
        consent_db = stack.enter_context(fresh_database("pont_bench_web_consent"))
        transitions_db = stack.enter_context(fresh_database("pont_bench_web_transitions"))
        base = free_port_run(6)
        link_name = f"agency_link_{safe_name(SCHOOL)}"
        env = {"AMQP_URI": vhost, "PONT_ENV": "development", "PONT_LOG_LEVEL": "WARNING",
               "PONT_AGENCIES": f"{SCHOOL},{SECONDARY},{HEALTH}", "PONT_BOOKINGS_DATABASE_URL": bookings_db,
               "PONT_CONSENT_DATABASE_URL": consent_db, "PONT_TRANSITIONS_DATABASE_URL": transitions_db,
               f"PONT_{link_name.upper()}_DATABASE_URL": link_db, "PONT_OUTBOX_POLL_SECONDS": "0.2"}
        stack.enter_context(process("bookings.service:BookingsService", "bookings", base + 1, env))
        stack.enter_context(process("agency_link.service:AgencyLinkService", link_name, base + 2, env,
                                    "--org", SCHOOL))
        stack.enter_context(process("consent.service:ConsentService", "consent", base + 4, env))
        stack.enter_context(process("transitions.service:TransitionsService", "transitions", base + 5, env))
        gateway = stack.enter_context(process("gateway.service:GatewayService", "gateway", base, env))
        web = stack.enter_context(process("web.service:WebService", "web", base + 3,
                                          {**env, "PONT_GATEWAY_URL": gateway}))
        session_id = seed(gateway)
        seed_transitions(gateway)
        nurse, dsl = signed_in(web, "nurse"), signed_in(web, "dsl")
        lead, receiver = signed_in(web, "lead"), signed_in(web, "receiver")
        pages = [("sign-in (anonymous)", requests.Session(), "/sign-in"),
                 ("clinic sessions (nurse)", nurse, "/sessions"),
                 ("a session, 9 appointments (nurse)", nurse, f"/sessions/{session_id}"),
                 ("create a session form (nurse)", nurse, "/sessions/new"),
                 ("review queue, 3 items (DSL)", dsl, "/reviews"),
                 ("clinic sessions in Welsh (nurse)", nurse, "/sessions"),
                 (f"transitions sent, {CLASS_SIZE} (primary)", lead, "/transitions"),
                 ("upload a cohort form (primary)", lead, "/transitions/new"),
                 (f"transitions received, {CLASS_SIZE} (secondary)", receiver, "/transitions/inbox")]
        print(f"web pages: {REQUESTS} sequential GETs each after 10 warm-up, {SESSIONS} sessions; ms")
        print(f"{'page':<38} {'p50':>7} {'p95':>7} {'max':>7}")
        for label, client, path in pages:
            if "Welsh" in label:
                client.cookies.set("pont_lang", "cy")
            took = sorted(timed(client, web + path))
            p95 = took[int(len(took) * 0.95) - 1]
            print(f"{label:<38} {statistics.median(took):7.1f} {p95:7.1f} {took[-1]:7.1f}")


if __name__ == "__main__":
    main()
