"""Bench: prepare, send and acknowledge a national Year 6 cohort (~36,000 pupils in Wales).

The headline run is the whole platform path for the cohort: the real transitions service
and the REAL consent service, each its own process as docker-compose runs them
(`pont_shared.operations.runner`), each on its own fresh PostgreSQL database, over the real broker;
this process drives them as the gateway would, and runs referrals (asked for each cohort's
open agency involvement). Every sharing decision is made by consent's
rules and every disclosure is appended to its hash-chained ledger (`share_many`, chunks of
500, under the ledger lock); the chain is verified with `pont-verify-ledger` at the end.

Set-up (not timed): one information-sharing agreement per primary/secondary pair, created
through consent's `create_agreement`; one parental consent per pupil (education,
attendance, aln; health_wellbeing for 2 pupils in 3; none at all for 1 pupil in 50), built
by consent's own rules (`Consent.record`) and bulk-inserted into consent's database, since
36,000 `record_consent` calls would only time the set-up. Each primary's transition lead
then sends its cohort in one call (`send: true`); each secondary acknowledges in bulk.

With the times it prints the CPU each process used while timed (read from /proc): on a
2-core machine the run is bound by the CPU of all of them together, not by one of them.

Optional, demoted: BENCH_STANDIN_PUPILS > 0 adds a run against an in-process stand-in for
consent (`BenchConsent`: fixed in-memory answers, no ledger) to isolate what transitions
itself costs. Its figures are NOT the platform's and are labelled so.

Environment: BENCH_PUPILS (36000), BENCH_PER_PRIMARY (30), BENCH_SECONDARIES (200),
BENCH_CONCURRENCY (4: callers at once, as gateway workers, each starting its next call as soon
as its last is answered), BENCH_STANDIN_PUPILS (0).
"""
from __future__ import annotations

import eventlet

eventlet.monkey_patch()  # noqa: E402

import dataclasses  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections import Counter  # noqa: E402
from contextlib import ExitStack, contextmanager  # noqa: E402
from datetime import UTC, date, datetime, timedelta  # noqa: E402
from pathlib import Path  # noqa: E402

from nameko.containers import ServiceContainer  # noqa: E402
from nameko.exceptions import UnknownService  # noqa: E402
from nameko.rpc import MethodProxy  # noqa: E402
from nameko.standalone.rpc import ClusterRpcProxy  # noqa: E402
from sqlalchemy import func, insert, select, text  # noqa: E402

from pont_shared.config import Settings  # noqa: E402
from pont_shared.contract.envelope import DISCLOSURES_EXCHANGE  # noqa: E402
from pont_shared.identity import child_ref, make_upn  # noqa: E402
from pont_shared.logs import configure_logging  # noqa: E402
from pont_shared.messaging.db import make_engine  # noqa: E402
from pont_shared.messaging.rpc import TRANSIENT, RpcProxy, rpc  # noqa: E402
from pont_shared.operations.runner import settle_collector  # noqa: E402
from pont_shared.testing import AMQP_URI, fresh_database, service_process, signed, web_address  # noqa: E402
from pont_shared.testing.fixtures import delete_queues  # noqa: E402
from transitions.orm import tables  # noqa: E402
from transitions.service import TransitionsService  # noqa: E402

PUPILS = int(os.environ.get("BENCH_PUPILS", "36000"))
PER_PRIMARY = int(os.environ.get("BENCH_PER_PRIMARY", "30"))
SECONDARIES = int(os.environ.get("BENCH_SECONDARIES", "200"))
STANDIN_PUPILS = int(os.environ.get("BENCH_STANDIN_PUPILS", "0"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "4"))


class BenchTransitions(TransitionsService):
    """The transitions service, asking this run's consent and referrals services."""

    consent = RpcProxy(os.environ.get("BENCH_CONSENT_SERVICE", "consent"))
    referrals = RpcProxy(os.environ.get("BENCH_REFERRALS_SERVICE", "referrals"))


class BenchConsent:
    """NOT the consent service: an in-process stand-in answering from fixed rules, with no ledger.

    Only for BENCH_STANDIN_PUPILS (what transitions costs on its own); the headline run uses consent.
    """

    name = "bench_consent"

    @staticmethod
    def _answer(request: dict) -> dict:
        decisions = []
        for category in request["categories"]:
            if request.get("basis") == "legal_obligation":
                allowed, basis, ref = "dsl" in request["caller"]["roles"], "legal_obligation", "lo:bench"
            else:
                allowed = category != "family_context" and not (
                    category == "health_wellbeing" and int(request["child_ref"][-2:], 16) % 3 == 0)
                basis, ref = ("consent", "consent-" + request["child_ref"][-8:]) if allowed else (None, None)
            decisions.append({"category": category, "allowed": allowed, "basis": basis, "basis_ref": ref,
                              "reason": "bench"})
        any_allowed = any(d["allowed"] for d in decisions)
        return {"decisions": decisions, "flagged_for_review": request.get("basis") == "legal_obligation",
                "disclosure_id": str(uuid.uuid4()) if any_allowed else None}

    @rpc
    def decide_many(self, requests: list[dict]) -> list[dict]:
        return [self._answer(r) for r in requests]

    @rpc
    def share_many(self, requests: list[dict]) -> list[dict]:
        return [self._answer(r) for r in requests]


def settings(service: str, url: str) -> Settings:
    env = {"AMQP_URI": AMQP_URI, "PONT_LOG_LEVEL": "WARNING", "PONT_OUTBOX_POLL_SECONDS": "0.2"}
    return dataclasses.replace(Settings.from_env(service, env, http_port=0), database_url=url)


def start(cls, name: str, cfg: Settings, **attrs) -> ServiceContainer:
    container = ServiceContainer(type(cls.__name__, (cls,), {"name": name, **attrs}),
                                 {**cfg.nameko_config(), "WEB_SERVER_ADDRESS": web_address()})
    container.start()
    return container


def cohorts(total: int, run: str):
    """(primary, secondary, pupils) per primary: LA 6xx schools, ~30 pupils each."""
    serial = 0
    primaries = max(1, total // PER_PRIMARY)
    for p in range(primaries):
        primary = f"school:{600 + p % 22}{1000 + p:04d}"
        secondary = f"school:{600 + (p % SECONDARIES) % 22}{5000 + p % SECONDARIES:04d}"
        size = PER_PRIMARY if p < primaries - 1 else total - serial
        pupils = []
        for _ in range(size):
            serial += 1
            pupils.append({
                "child": {"upn": make_upn(serial, prefix=run), "given_name": "Bench", "family_name": f"Pupil{serial}",
                          "date_of_birth": "2014-09-01"},
                "sections": {
                    "attendance": {"year": 2025, "sessions_possible": 380, "sessions_authorised": serial % 11,
                                   "sessions_unauthorised": serial % 4},
                    "aln": {"decision_outcome": "has_aln" if serial % 5 == 0 else "no_aln", "areas_of_need": []},
                    "wellbeing": {"notes": "bench"},
                },
            })
        yield primary, secondary, pupils


@contextmanager
def callers(service_name: str):
    """CONCURRENCY callers of `service_name`, as the gateway's workers would be: `call_all(method,
    arg_lists)` gives every caller its next call as soon as its last is answered; results in order."""
    with ExitStack() as proxies:
        services = [getattr(proxies.enter_context(ClusterRpcProxy({"AMQP_URI": AMQP_URI}, timeout=600)),
                            service_name) for _ in range(CONCURRENCY)]

        def call_all(method: str, arg_lists) -> list:
            arg_lists = list(arg_lists)
            results: list = [None] * len(arg_lists)
            todo = iter(enumerate(arg_lists))   # shared: each caller takes the next one when free

            def work(service) -> None:
                call = as_the_gateway_calls(service, method)
                for index, args in todo:
                    results[index] = call(*args)

            for caller in [eventlet.spawn(work, service) for service in services]:
                caller.wait()
            return results

        yield call_all


def as_the_gateway_calls(service, method: str) -> MethodProxy:
    """`service.method`, its requests sent transient as the gateway sends them (`pont_shared.messaging.rpc`)."""
    return MethodProxy(service.worker_ctx, service.service_name, method, service.reply_listener, **TRANSIENT)


def bind_receivers(secondaries) -> str:
    """Stand in for the secondaries' agency_link queues, so disclosures are routable (deleted after)."""
    import pika

    queue = f"bench_disclosures_{uuid.uuid4().hex[:8]}"
    with pika.BlockingConnection(pika.URLParameters(AMQP_URI)) as conn:
        channel = conn.channel()
        channel.exchange_declare(DISCLOSURES_EXCHANGE, "topic", durable=True)
        channel.queue_declare(queue, arguments={"x-max-length": 1})   # keep the broker lean: drop-head
        for secondary in secondaries:
            channel.queue_bind(queue, DISCLOSURES_EXCHANGE, routing_key=secondary)
    return queue


def delete_queue(queue: str) -> None:
    import pika

    with pika.BlockingConnection(pika.URLParameters(AMQP_URI)) as conn:
        conn.channel().queue_delete(queue)


def measure(label: str, work, transitions_name: str, outboxes) -> None:
    """Time prepare+send and acknowledge of `work`; then how long until every outbox is drained.

    `outboxes`: (name, engine, outbox table) of each service whose events must reach the broker.
    """
    queue = bind_receivers({secondary for _, secondary, _ in work})
    try:
        _measure(label, work, transitions_name, outboxes)
    finally:
        delete_queue(queue)


class CpuUse:
    """CPU time used by the processes of the run, by role, read from /proc (Linux)."""

    ROLES = (("postgres", "postgres"), ("rabbitmq", "beam.smp"), ("transitions", "bench_transitions_"),
             ("consent", "bench_consent_"))

    def __init__(self):
        self.busy = self._machine_busy()
        self.by_role = self._by_role()

    @classmethod
    def _by_role(cls) -> Counter:
        used: Counter = Counter()
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            role = "this process (driver, referrals)" if int(pid) == os.getpid() else next(
                (name for name, mark in cls.ROLES if mark in command), None)
            if role:
                used[role] += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return used

    @staticmethod
    def _machine_busy() -> float:
        ticks = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")   # all but idle and iowait

    def report(self, seconds: float) -> str:
        now = CpuUse()
        used = now.by_role - self.by_role
        cores = os.cpu_count() or 1
        roles = ", ".join(f"{role} {used[role]:.1f}" for role, _ in used.most_common())
        return (f"CPU while timed: {now.busy - self.busy:.1f} of {cores * seconds:.1f} core-seconds busy "
                f"({cores} cores); by process: {roles}")


def _measure(label, work, transitions_name, outboxes) -> None:
    with callers(transitions_name) as call_all:
        cpu = CpuUse()
        started = time.perf_counter()
        replies = call_all("prepare", [
            ({"to_school": secondary, "pupils": pupils, "send": True},
             signed({"sub": f"lead-{primary}", "org": primary, "roles": ["transition_lead"]}))
            for primary, secondary, pupils in work])
        prepared_sent = time.perf_counter() - started
        sent = [(secondary, records) for (_, secondary, _), records in zip(work, replies, strict=True)]
        by_secondary: dict[str, list[str]] = {}
        for secondary, records in sent:
            by_secondary.setdefault(secondary, []).extend(r["id"] for r in records)

        started = time.perf_counter()
        call_all("acknowledge_many", [
            (ids[i:i + 2000], signed({"sub": f"lead-{secondary}", "org": secondary, "roles": ["transition_lead"]}))
            for secondary, ids in by_secondary.items() for i in range(0, len(ids), 2000)])
        acknowledged = time.perf_counter() - started
        cpu_used = cpu.report(prepared_sent + acknowledged)
    started = time.perf_counter()
    drained_at: dict[str, float] = {}
    unsent: dict[str, int] = {}
    while len(drained_at) < len(outboxes) and time.perf_counter() - started <= 300:
        for name, engine, outbox in outboxes:
            if name in drained_at:
                continue
            with engine.connect() as db:
                unsent[name] = db.execute(select(func.count()).where(outbox.c.sent_at.is_(None))).scalar()
            if not unsent[name]:
                drained_at[name] = time.perf_counter() - started
        time.sleep(0.2)
    count = sum(len(r) for _, r in sent)
    included = Counter(section for _, records in sent for r in records for section in r["included"])
    withheld = Counter(w["section"] for _, records in sent for r in records for w in r["withheld"])
    print(f"\n== {label}: {count} pupils, {len(work)} primaries -> {len(by_secondary)} secondaries")
    print(f"prepare+send  {prepared_sent:8.2f} s   ({count / prepared_sent:8.0f} pupils/s)")
    print(f"acknowledge   {acknowledged:8.2f} s   ({count / acknowledged:8.0f} pupils/s)")
    print(f"total         {prepared_sent + acknowledged:8.2f} s   (target for 36,000: <= 60 s)")
    print(cpu_used)
    for name, _, _ in outboxes:
        if name in drained_at:
            print(f"outbox {name:12s} drained {drained_at[name]:7.2f} s after the last acknowledgement")
        else:
            print(f"outbox {name:12s} NOT drained within 300 s: {unsent.get(name)} unsent")
    print(f"sections included {dict(sorted(included.items()))}; withheld {dict(sorted(withheld.items()))}")


def main() -> None:
    configure_logging("bench", "ERROR")
    run = uuid.uuid4().hex[:8]
    if PUPILS:
        real_consent_run(run)
    if STANDIN_PUPILS:
        standin_run(run)


def real_consent_run(run: str) -> None:
    """The headline: transitions and the real consent service, each on its own database."""
    from consent.orm import tables as consent_tables
    from consent.service import ConsentService
    from referrals.service import ReferralsService

    containers = []
    try:
        with fresh_database("pont_bench_tr") as url, fresh_database("pont_bench_consent") as consent_url, \
                fresh_database("pont_bench_referrals") as referrals_url, ExitStack() as processes:
            consent_name, transitions_name = f"bench_consent_{run}", f"bench_transitions_{run}"
            referrals_name = f"bench_referrals_{run}"
            containers.append(start(ReferralsService, referrals_name, settings("referrals", referrals_url),
                                    consent=RpcProxy(consent_name)))
            processes.enter_context(own_process("consent.service:ConsentService", ConsentService, consent_name,
                                                consent_url, probe=("decide_many", [])))
            processes.enter_context(own_process(
                "bench_transitions:BenchTransitions", TransitionsService, transitions_name, url,
                probe=("inbox", signed({"sub": "bench", "org": "school:0000000", "roles": ["transition_lead"]})),
                BENCH_CONSENT_SERVICE=consent_name, BENCH_REFERRALS_SERVICE=referrals_name))
            engine, consent_engine = make_engine(url), make_engine(consent_url)
            work = list(cohorts(PUPILS, str(700 + int(run, 16) % 200)))
            started = time.perf_counter()
            seed_consent(consent_name, consent_engine, settings("consent", consent_url).child_ref_secret, work)
            print(f"set-up (not timed in the figures): {len(work)} agreements, consents for {PUPILS} pupils "
                  f"in {time.perf_counter() - started:.1f} s")
            settle_collector()  # as the runner does in each deployed service (referrals runs in this process)
            measure("REAL consent service (transitions and consent each their own process, as deployed; "
                    "share_many, rules + hash-chained ledger on PostgreSQL)",
                    work, transitions_name, [("transitions", engine, tables.outbox),
                                             ("consent", consent_engine, consent_tables.outbox)])
            verify_ledger(consent_url)
            engine.dispose()
            consent_engine.dispose()
    finally:
        for container in reversed(containers):
            container.stop()
            delete_queues(container)


@contextmanager
def own_process(spec: str, cls, name: str, database_url: str, *, probe: tuple[str, object], **env: str):
    """A service as its own process, ready once its RPC `probe` (method, argument) answers [];
    its queues deleted afterwards."""
    method_name, argument = probe

    def answers() -> bool:
        try:
            with ClusterRpcProxy({"AMQP_URI": AMQP_URI}, timeout=5) as cluster:
                return getattr(getattr(cluster, name), method_name)(argument) == []
        except UnknownService:
            return False

    try:
        with service_process(spec, name, database_url, ready=answers, PONT_OUTBOX_POLL_SECONDS="0.2",
                             PYTHONPATH=str(Path(__file__).parent), **env):
            yield
    finally:
        delete_queues(ServiceContainer(type(cls.__name__, (cls,), {"name": name}), {"AMQP_URI": AMQP_URI}))


def seed_consent(consent_name: str, consent_engine, secret: str, work) -> None:
    """Agreements through consent's RPC; consents made by consent's rules, inserted in bulk."""
    from consent.domain import Consent
    from consent.orm import consent_row, consents

    admin = signed({"sub": "admin", "org": "local_authority:bench", "roles": ["admin"]})
    today = date.today()
    with callers(consent_name) as call_all:
        created = call_all("create_agreement", [
            ({"parties": [primary, secondary], "purposes": ["transition"],
              "categories": ["education", "attendance", "aln", "health_wellbeing"],
              "valid_from": str(today - timedelta(days=1)), "valid_to": str(today + timedelta(days=365))}, admin)
            for primary, secondary, _ in work])
        call_all("approve_agreement", [
            (agreement["id"], signed({"sub": "admin", "org": party, "roles": ["admin"]}))
            for agreement, (primary, secondary, _) in zip(created, work, strict=True)
            for party in (primary, secondary)])
    now = datetime.now(UTC)
    rows, serial = [], 0
    for primary, secondary, pupils in work:
        for pupil in pupils:
            serial += 1
            if serial % 50 == 0:
                continue                                   # no consent: every consent section withheld
            categories = ["education", "attendance", "aln"] + (["health_wellbeing"] if serial % 3 else [])
            consent = Consent.record(
                id=str(uuid.uuid4()), child_ref=child_ref(pupil["child"]["upn"], secret), relationship="parent",
                competence_assessed=False, date_of_birth=None, recipients=[secondary], purposes=["transition"],
                categories=categories, evidence="written", expires_on=None, recorded_by_org=primary,
                recorded_by="bench-staff", now=now)
            rows.append({**consent_row(consent), "given_by_name": "Bench Parent"})
    with consent_engine.begin() as db:
        for i in range(0, len(rows), 5000):
            db.execute(insert(consents), rows[i:i + 5000])
    with consent_engine.begin() as db:
        # as after any bulk load: statistics, which a consent database in service has from
        # autovacuum (off on some machines). Without them PostgreSQL guesses that a lookup of
        # 30 children's consents matches 15% of the table and reads all of it, every request.
        db.execute(text("ANALYZE"))


def verify_ledger(consent_url: str) -> None:
    from consent.domain import LedgerKeys
    from consent.verify import verify

    settings = Settings.from_env("consent")   # the keys the bench's consent ran with (from the environment)
    started = time.perf_counter()
    checked, broken = verify(consent_url, LedgerKeys.from_secrets(settings.ledger_key, settings.ledger_previous_keys))
    took = time.perf_counter() - started
    print(f"ledger: {checked} entries, " + ("chain intact" if broken is None else
                                            f"BROKEN at seq={broken['seq']}: {broken['reason']}") + f" ({took:.1f} s)")


def standin_run(run: str) -> None:
    """Demoted: transitions against the in-process stand-in (not the consent service)."""
    containers = []
    try:
        with fresh_database("pont_bench_tr_standin") as url:
            consent_name, transitions_name = f"bench_standin_{run}", f"bench_transitions_si_{run}"
            containers.append(start(BenchConsent, consent_name, settings("consent", url)))
            containers.append(start(TransitionsService, transitions_name, settings("transitions", url),
                                    consent=RpcProxy(consent_name), referrals=RpcProxy(f"bench_no_referrals_{run}")))
            engine = make_engine(url)
            work = list(cohorts(STANDIN_PUPILS, str(700 + (int(run, 16) + 1) % 200)))
            measure("STAND-IN consent (in-process, no rules, no ledger; NOT the platform figure)", work,
                    transitions_name, [("transitions", engine, tables.outbox)])
            engine.dispose()
    finally:
        for container in reversed(containers):
            container.stop()
            delete_queues(container)


if __name__ == "__main__":
    main()
