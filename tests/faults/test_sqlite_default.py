"""The embedded SQLite default holds 50 concurrent clients.

`make start` with no database configured puts every service on its own SQLite file under
`PONT_DATA_DIR`. Here the whole stack starts that way (`python -m pont_shared.operations.stack start`, on
a RabbitMQ vhost, ports and data directory of its own), and 50 client threads raise referrals
through the gateway at once — half for children whose parent gave consent (sent, disclosed to
health), half for children without (held, awaiting consent). Each request is retried on a 5xx
or a lost connection with the same `Idempotency-Key`, as real clients do, then sent once more
to check that the replay answers as the first time did.

Every request must complete before the deadline: a service that waits for a busy SQLite file
by blocking its whole process wedges instead (each of its green threads stops, the one
holding the lock among them). The errors the clients saw and the ends of the services' logs
are in the failure message, so a wedge says what it was.
"""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, text

from pont_shared.config import safe_name
from pont_shared.identity import make_upn
from pont_shared.testing import bearer, free_port_run, own_vhost, wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = 50
REFERRALS_EACH = 4
DEADLINE_SECONDS = 240     # for all 50 clients to finish; measured well under a minute when nothing wedges
RETRY_PAUSE = 0.2
SCHOOL, HEALTH = "school:6612001", "health:cardiff-vale"
AGENCY_LINK = f"agency_link_{safe_name(HEALTH)}"
SERVICES = ("consent", "referrals", "bookings", "transitions", "gateway")
NOISE = ("eventlet", "recommend", "framework", "migrat")   # eventlet's deprecation notice in every log


class SqliteStack:
    """The stack as `make start` runs it, every service on SQLite under `data_dir`."""

    def __init__(self, amqp_uri: str, work: Path):
        self.secret = "sqlite-default-" + uuid.uuid4().hex
        self.run_dir, self.data_dir = work / "run", work / "data"
        agencies = (SCHOOL, HEALTH)
        base = free_port_run(len(SERVICES) + len(agencies))
        self.ports = {name: base + index for index, name in enumerate(SERVICES)}
        for index, org in enumerate(agencies):
            self.ports[f"agency_link_{safe_name(org)}"] = base + len(SERVICES) + index
        inherited = {k: v for k, v in os.environ.items() if not k.endswith("_DATABASE_URL")}
        self.env = {**inherited, "AMQP_URI": amqp_uri, "PONT_JWT_SECRET": self.secret,
                    "PONT_AGENCIES": ",".join(agencies), "PONT_RUN_DIR": str(self.run_dir),
                    "PONT_DATA_DIR": str(self.data_dir), "PONT_LOG_LEVEL": "WARNING",
                    "PONT_AGENCY_LINK_BASE_PORT": str(base + len(SERVICES)),
                    **{f"PONT_{name.upper()}_PORT": str(self.ports[name]) for name in SERVICES}}
        self.gateway = f"http://127.0.0.1:{self.ports['gateway']}"

    def command(self, verb: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pont_shared.operations.stack", verb], env=self.env, cwd=ROOT,
                              capture_output=True, text=True, timeout=240)

    def evidence(self, clients: list[Client]) -> str:
        """What a wedge looks like from outside, for the failure message: the errors the clients
        saw, which services answer `/ready`, which database files a writer holds, and the logs' ends."""
        seen = Counter(error for client in clients for error in client.errors)
        lines = ["errors the clients saw (each retried):", *(f"  {n} × {e}" for e, n in seen.most_common(8))]
        for name, port in self.ports.items():
            try:
                answer = requests.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code
            except requests.RequestException as exc:
                answer = type(exc).__name__
            lines.append(f"{name}: /ready → {answer}; {self._write_lock(name)}")
        for name in self.ports:
            path = self.run_dir / f"{name}.log"
            if path.exists():
                tail = [line for line in path.read_text(errors="replace").splitlines()
                        if line.strip() and not any(word in line.lower() for word in NOISE)]
                lines += [f"--- {path.name} ends:", *tail[-12:]]
        return "\n".join(lines)

    def _write_lock(self, name: str) -> str:
        path = self.data_dir / f"{name}.db"
        if not path.exists():
            return "no database file"
        probe = sqlite3.connect(path, timeout=0.5, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
            return "its database is free"
        except sqlite3.OperationalError as exc:
            return f"its database: {exc}"
        finally:
            probe.close()


@pytest.fixture(scope="module")
def sqlite_stack():
    with own_vhost("pont_sqlite") as amqp_uri, tempfile.TemporaryDirectory(prefix="pont-sqlite-") as work:
        stack = SqliteStack(amqp_uri, Path(work))
        started = stack.command("start")
        try:
            assert started.returncode == 0, started.stdout + started.stderr
            assert (stack.data_dir / "referrals.db").exists()   # the embedded default, not a server
            yield stack
        finally:
            stack.command("stop")


class Client(threading.Thread):
    """One school client: raises its referrals one after another, each retried until answered."""

    def __init__(self, stack: SqliteStack, number: int, deadline: float, start: threading.Barrier):
        super().__init__(daemon=True)
        self.stack, self.number, self.deadline, self.start_together = stack, number, deadline, start
        self.staff = bearer(f"teacher-{number}", SCHOOL, ["school_staff"], secret=stack.secret)
        self.accepted: dict[str, dict] = {}   # Idempotency-Key → the 201 body
        self.consented: set[str] = set()       # keys of referrals for children with consent
        self.replays: list[tuple[str, dict, dict]] = []   # (key, first body, replayed body) that differ
        self.errors: list[str] = []            # 5xx and lost connections seen (each was retried)
        self.refused: list[str] = []           # a 4xx, or a request still unanswered at the deadline

    def run(self) -> None:
        self.start_together.wait()
        with requests.Session() as http:
            for serial in range(REFERRALS_EACH):
                child = {"upn": make_upn(uuid.uuid4().int % 10**9), "given_name": f"Ffion{self.number}",
                         "family_name": "Evans", "date_of_birth": "2015-04-12"}
                with_consent = (self.number + serial) % 2 == 0
                if with_consent and self._post(http, "/api/v1/consents", str(uuid.uuid4()), {
                        "child": child, "given_by": {"name": "Sian Evans", "relationship": "parent"},
                        "recipients": [HEALTH], "purposes": ["referral"],
                        "categories": ["contact", "health_wellbeing"], "evidence": "written"}) is None:
                    return
                key = str(uuid.uuid4())
                body = {"child": child, "to_org": HEALTH, "service": "school_nursing", "reason": "low mood",
                        "details": "Withdrawn in class for two weeks.", "urgency": "routine",
                        "share": ["contact", "health_wellbeing"]}
                raised = self._post(http, "/api/v1/referrals", key, body)
                if raised is None:
                    return
                self.accepted[key] = raised
                if with_consent:
                    self.consented.add(key)
                again = self._post(http, "/api/v1/referrals", key, body)
                if again != raised:
                    self.replays.append((key, raised, again))

    def _post(self, http: requests.Session, path: str, key: str, body: dict) -> dict | None:
        while time.monotonic() < self.deadline:
            try:
                response = http.post(self.stack.gateway + path, json=body, timeout=60,
                                     headers={**self.staff, "Idempotency-Key": key})
            except requests.RequestException as exc:
                self.errors.append(f"POST {path}: {type(exc).__name__}")
                time.sleep(RETRY_PAUSE)
                continue
            if response.status_code == 201:
                return response.json()
            if response.status_code < 500:
                self.refused.append(f"POST {path} → {response.status_code} {response.text[:300]}")
                return None
            self.errors.append(f"POST {path} → {response.status_code} {response.text[:300]}")
            time.sleep(RETRY_PAUSE)
        self.refused.append(f"POST {path}: still unanswered at the deadline")
        return None


def disclosed_to_health(stack: SqliteStack) -> Counter:
    """Referral id → how many copies health's agency_link holds, read through the public API."""
    nurse = bearer("nurse-sqlite", HEALTH, ["school_nurse"], secret=stack.secret)
    response = requests.get(f"{stack.gateway}/api/v1/inbox/referrals", headers=nurse, timeout=30)
    response.raise_for_status()
    return Counter(copy["id"] for copy in response.json())


def copies_in_agency_store(stack: SqliteStack) -> Counter:
    """The same, read from the agency_link's own database file."""
    engine = create_engine(f"sqlite:///{stack.data_dir / (AGENCY_LINK + '.db')}")
    try:
        with engine.connect() as db:
            return Counter(subject for (subject,) in db.execute(
                text("SELECT subject_id FROM disclosures WHERE subject_kind = 'referral'")))
    finally:
        engine.dispose()


def test_fifty_clients_raising_referrals_at_once_all_complete_each_exactly_once(sqlite_stack):
    stack = sqlite_stack
    admin = bearer("admin-sqlite", "local_authority:cardiff", ["admin"], secret=stack.secret)
    agreement = requests.post(f"{stack.gateway}/api/v1/agreements", headers=admin, timeout=30, json={
        "parties": [SCHOOL, HEALTH], "purposes": ["referral"], "categories": ["contact", "health_wellbeing"],
        "valid_from": str(date.today() - timedelta(days=1)), "valid_to": str(date.today() + timedelta(days=365))})
    assert agreement.status_code == 201, agreement.text
    for party in (SCHOOL, HEALTH):
        approved = requests.post(f"{stack.gateway}/api/v1/agreements/{agreement.json()['id']}/approve", timeout=30,
                                 headers=bearer("admin-sqlite", party, ["admin"], secret=stack.secret))
        assert approved.status_code == 200, approved.text
    started, together = time.monotonic(), threading.Barrier(CLIENTS)
    clients = [Client(stack, number, started + DEADLINE_SECONDS, together) for number in range(CLIENTS)]

    for client in clients:
        client.start()
    for client in clients:
        client.join(timeout=max(0.0, started + DEADLINE_SECONDS + 70 - time.monotonic()))
    took = time.monotonic() - started

    unfinished = [client.number for client in clients if client.is_alive()]
    refused = [refusal for client in clients for refusal in client.refused]
    assert not unfinished and not refused, (f"{len(unfinished)} clients unfinished, {len(refused)} requests refused "
                                           f"or unanswered: {refused[:3]}\n" + stack.evidence(clients))
    errors = [error for client in clients for error in client.errors]
    accepted = {key: body for client in clients for key, body in client.accepted.items()}
    assert len(accepted) == CLIENTS * REFERRALS_EACH
    print(f"\n{len(accepted)} referrals (and {len(accepted) // 2} consents, {len(accepted)} replays) by {CLIENTS} "
          f"clients on SQLite in {took:.1f} s; {len(errors)} errors retried: {Counter(errors).most_common(3)}")
    assert [replay for c in clients for replay in c.replays] == []   # a replay answers as the first time
    consented = {key for client in clients for key in client.consented}
    sent = {body["id"] for key, body in accepted.items() if key in consented}
    held = {body["id"] for body in accepted.values()} - sent
    assert len(sent) + len(held) == len(accepted)   # no two keys answered with the same referral
    assert {body["status"] for body in accepted.values() if body["id"] in sent} == {"sent"}
    assert {body["status"] for body in accepted.values() if body["id"] in held} == {"awaiting_consent"}

    staff = bearer("teacher-check", SCHOOL, ["school_staff"], secret=stack.secret)
    listed = requests.get(f"{stack.gateway}/api/v1/referrals", headers=staff, timeout=30)
    assert listed.status_code == 200, listed.text
    listed_ids = Counter(referral["id"] for referral in listed.json())
    per_child = Counter(referral["child_ref"] for referral in listed.json())
    assert set(listed_ids) == sent | held and max(listed_ids.values()) == 1   # each exactly once, nothing more
    assert max(per_child.values()) == 1                # one child per key: no key had a second effect
    for body in accepted.values():
        got = requests.get(f"{stack.gateway}/api/v1/referrals/{body['id']}", headers=staff, timeout=30)
        assert got.status_code == 200 and got.json()["status"] == body["status"], got.text

    inbox = wait_until(lambda: (found := disclosed_to_health(stack)) and sent <= set(found) and found,
                       timeout=60, interval=0.5, message="not every sent referral reached health's agency_link")
    assert set(inbox) == sent and max(inbox.values()) == 1   # each disclosed once; nothing held was disclosed
    assert copies_in_agency_store(stack) == inbox
