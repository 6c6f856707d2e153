"""The whole stack as `make start` runs it, watched by a real Prometheus.

Starts every service as its own process (PostgreSQL databases, free ports, our own JWT
secret and agency list, all through the environment as `make start` honours it), points
a real Prometheus at their `/metrics`, runs flows through the public API, and asks
Prometheus' HTTP API whether every target is up and the flows' counters moved; then
`make demo`'s script walks every flow against the same stack, and a real browser (headless
Chromium, tests/browser/) runs a clinic, a referral and a class's transition on its pages in
English and in Welsh.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from datetime import date, timedelta
from pathlib import Path

import amqp
import pytest
import requests

from pont_shared.config import safe_name
from pont_shared.identity import make_upn
from pont_shared.messaging import topology
from pont_shared.messaging.broker import connect_amqp
from pont_shared.operations import queues
from pont_shared.testing import bearer, free_port_run, fresh_database, own_vhost, wait_until
from pont_shared.testing.cohort import CLASS_SIZE, FULLY_CONSENTED, as_csv, pupil, schools_with_consent

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SECRET = "stack-test-secret-" + uuid.uuid4().hex
AGENCIES = ["school:6612001", "school:6614002", "health:cardiff-vale"]   # the demo's organisations


@pytest.fixture(scope="module")
def stack():
    services = [p.name for p in (ROOT / "services").iterdir() if (p / "pyproject.toml").exists()]
    with contextlib.ExitStack() as stack_:
        broker = stack_.enter_context(own_vhost("pont_stack"))
        env = {**os.environ, "AMQP_URI": broker, "PONT_JWT_SECRET": SECRET, "PONT_AGENCIES": ",".join(AGENCIES),
               "PONT_RUN_DIR": stack_.enter_context(tempfile.TemporaryDirectory()), "PONT_LOG_LEVEL": "WARNING"}
        base = free_port_run(len(services) + len(AGENCIES) + 2)  # services, agency links, Prometheus, mail sink
        named_ports = {name: base + index for index, name in enumerate(sorted(services))}
        for name in services:
            if name == "agency_link":
                for org in AGENCIES:
                    key = safe_name(f"agency_link_{org}").upper()
                    env[f"PONT_{key}_DATABASE_URL"] = stack_.enter_context(fresh_database("pont_stack_agency"))
                continue
            env[f"PONT_{name.upper()}_PORT"] = str(named_ports[name])
            if name != "gateway":
                env[f"PONT_{name.upper()}_DATABASE_URL"] = stack_.enter_context(fresh_database(f"pont_stack_{name}"))
        agency_base = base + len(services)
        env["PONT_AGENCY_LINK_BASE_PORT"] = str(agency_base)
        env["PONT_SMTP_SINK_PORT"] = str(agency_base + len(AGENCIES) + 1)
        leave_classic_queues(broker)
        started = subprocess.run([sys.executable, "-m", "pont_shared.operations.stack", "start"], env=env, cwd=ROOT,
                                 capture_output=True, text=True, timeout=180)
        try:
            assert started.returncode == 0, started.stdout + started.stderr
            targets = {name: port for name, port in named_ports.items() if name != "agency_link"}
            for index, org in enumerate(AGENCIES):
                targets[f"agency_link_{safe_name(org)}"] = agency_base + index
            yield {"gateway": f"http://127.0.0.1:{named_ports['gateway']}", "web": f"http://127.0.0.1:{named_ports['web']}",
                   "targets": targets, "env": env, "prometheus_port": agency_base + len(AGENCIES), "broker": broker,
                   "started": started.stdout}
        finally:
            subprocess.run([sys.executable, "-m", "pont_shared.operations.stack", "stop"], env=env, cwd=ROOT,
                           timeout=60)


def leave_classic_queues(broker: str) -> None:
    """As an older Pont left the broker: consent's dead-letter queue (holding one letter) and
    referrals' RPC queue, classic."""
    connection = connect_amqp(broker, confirm_publish=True)
    channel = connection.channel()
    channel.exchange_declare(topology.RPC_EXCHANGE, "topic", durable=True, auto_delete=False)
    channel.queue_declare("rpc-referrals", durable=True, auto_delete=False)
    channel.queue_bind("rpc-referrals", topology.RPC_EXCHANGE, "referrals.*")
    channel.queue_declare(topology.dead_letter_queue_name("consent"), durable=True, auto_delete=False)
    channel.basic_publish(amqp.Message(b"{}", message_id="an-old-dead-letter", delivery_mode=2),
                          exchange="", routing_key=topology.dead_letter_queue_name("consent"))
    connection.close()


def test_make_start_made_an_older_ponts_classic_queues_quorum_keeping_their_messages(stack):
    vhost = stack["broker"].rsplit("/", 1)[1]
    types = {row["name"]: row for row in queues.listed("list_queues", vhost, "name", "type", "messages")}
    assert types["rpc-referrals"]["type"] == types["consent.dead-letters"]["type"] == "quorum"
    assert types["consent.dead-letters"]["messages"] == 1
    assert "2 classic queue(s) of an older Pont are now quorum queues (messages kept: 1)" in stack["started"]


@pytest.fixture(scope="module")
def prometheus(stack):
    binary = shutil.which("prometheus")
    assert binary, "prometheus is installed by infra/check.sh (Debian package prometheus)"
    port = stack["prometheus_port"]
    with tempfile.TemporaryDirectory() as work:
        scrape = "\n".join(
            f"      - targets: ['127.0.0.1:{target_port}']\n        labels: {{service: '{name}'}}"
            for name, target_port in stack["targets"].items())
        config = Path(work) / "prometheus.yml"
        config.write_text(f"global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: pont\n"
                          f"    honor_labels: true\n    static_configs:\n{scrape}\n")
        process = subprocess.Popen([binary, f"--config.file={config}", f"--storage.tsdb.path={work}/data",
                                    f"--web.listen-address=127.0.0.1:{port}"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(timeout=30)


def query(prometheus: str, expr: str) -> list:
    try:
        response = requests.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=5)
    except requests.ConnectionError:
        return []
    return response.json()["data"]["result"] if response.status_code == 200 else []


def value(prometheus: str, expr: str) -> float:
    result = query(prometheus, expr)
    return float(result[0]["value"][1]) if result else 0.0


def test_every_target_is_up_and_the_flows_move_their_counters(stack, prometheus):
    api = stack["gateway"] + "/api/v1"
    ups = wait_until(lambda: (r := query(prometheus, "up")) and len(r) == len(stack["targets"])
                     and all(s["value"][1] == "1" for s in r) and r, timeout=60)
    assert {s["metric"]["service"] for s in ups} == set(stack["targets"])

    admin = bearer("a", "local_authority:cardiff", ["admin"], secret=SECRET)
    staff = bearer("t", "school:6612001", ["school_staff"], secret=SECRET)
    nurse = bearer("n", "health:cardiff-vale", ["school_nurse"], secret=SECRET)
    agreement = requests.post(f"{api}/agreements", headers=admin, timeout=10, json={
        "parties": AGENCIES, "purposes": ["referral"], "categories": ["health_wellbeing"],
        "valid_from": str(date.today()), "valid_to": str(date.today() + timedelta(days=30))})
    agreement.raise_for_status()
    for party in AGENCIES:
        requests.post(f"{api}/agreements/{agreement.json()['id']}/approve", timeout=10,
                      headers=bearer("a", party, ["admin"], secret=SECRET)).raise_for_status()
    decision = requests.post(f"{api}/sharing-decisions", headers=staff, timeout=10, json={
        "child_ref": "c_unknown", "to_org": "health:cardiff-vale", "purpose": "referral",
        "categories": ["health_wellbeing"]})
    assert decision.status_code == 200 and decision.json()["decisions"][0]["allowed"] is False
    session = requests.post(f"{api}/sessions", headers=nurse, timeout=10, json={
        "site": "school:6612001", "room": f"room-{uuid.uuid4().hex[:6]}", "service": "school_nursing",
        "date": str(date.today() + timedelta(days=3)), "start": "09:00", "end": "09:30", "slot_minutes": 30,
        "capacity_per_slot": 1})
    assert session.status_code == 201, session.text
    child = {"upn": make_upn(99123), "given_name": "Ffion", "family_name": "Evans", "date_of_birth": "2015-06-01"}
    booked = requests.post(f"{api}/appointments", headers=nurse, timeout=10,
                           json={"slot_id": session.json()["slots"][0]["id"], "child": child})
    assert booked.status_code == 201, booked.text

    wait_until(lambda: value(prometheus, 'sum(pont_sharing_decisions_total{result="denied"})') >= 1, timeout=30)
    wait_until(lambda: value(prometheus, "sum(pont_bookings_total)") >= 1, timeout=30)
    wait_until(lambda: value(prometheus, 'sum(pont_entrypoint_calls_total{service="gateway"})') >= 4, timeout=30)
    wait_until(lambda: value(prometheus, 'sum(pont_outbox_published_events_total{service="bookings"})') >= 2,
               timeout=30)


def test_no_metric_label_carries_a_childs_identifier_or_name(stack, prometheus):
    wait_until(lambda: value(prometheus, "sum(pont_bookings_total)") >= 1, timeout=30)
    series = requests.get(f"{prometheus}/api/v1/series", params={"match[]": '{__name__=~"pont_.+"}'},
                          timeout=10).json()["data"]
    labels = {(key, val) for entry in series for key, val in entry.items() if key != "__name__"}

    assert series
    assert not [pair for pair in labels if pair[0] in {"child_ref", "upn", "name", "given_name", "family_name"}]
    assert not [pair for pair in labels if pair[1].startswith("c_") or "Ffion" in pair[1] or "Evans" in pair[1]]
    assert not [pair for pair in labels if make_upn(99123) in pair[1]]


def test_the_demo_walks_every_flow_through_the_public_api(stack):
    demo = subprocess.run([sys.executable, "scripts/demo.py"], env=stack["env"], cwd=ROOT, capture_output=True,
                          text=True, timeout=180)

    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "28 records prepared and sent" in demo.stdout and "Demo complete." in demo.stdout


def _post(stack, path: str, who: dict, body: dict) -> dict:
    response = requests.post(stack["gateway"] + path, json=body, headers=who, timeout=30)
    assert response.status_code in (200, 201), response.text
    return response.json()


@pytest.mark.browser
@pytest.mark.parametrize("lang", ["en", "cy"])
def test_in_a_browser_a_clinic_a_referral_and_a_class_of_28_run_on_make_starts_pages(stack, lang, tmp_path):
    """The journeys of tests/browser/, on the pages `make start` serves, as its demonstration people:
    the nurse runs a clinic; a referral goes to her and back; the primary's transition lead sends a
    class of 28, which the secondary's lead acknowledges and downloads as a CTF; the school invites a
    parent, who withdraws the consent staff recorded and reads what was shared."""
    school, health = AGENCIES[0], AGENCIES[2]   # the demo DSL's and teacher's school, the demo nurse's trust
    admin = bearer("admin", "local_authority:cardiff", ["admin"], SECRET)
    agreement = _post(stack, "/api/v1/agreements", admin, {
        "parties": [school, health], "purposes": ["referral"], "categories": ["contact", "health_wellbeing"],
        "valid_from": "2020-01-01", "valid_to": "2099-12-31"})
    for party in (school, health):
        _post(stack, f"/api/v1/agreements/{agreement['id']}/approve", bearer("admin", party, ["admin"], SECRET), {})
    child = make_upn(uuid.uuid4().int % 10**9)
    _post(stack, "/api/v1/consents", bearer("demo-teacher", school, ["school_staff"], SECRET), {
        "child": {"upn": child, "given_name": "Cerys", "family_name": "Jones", "date_of_birth": "2015-03-14"},
        "given_by": {"name": "Rhian Jones", "relationship": "parent"}, "recipients": [health],
        "purposes": ["referral"], "categories": ["contact", "health_wellbeing"], "evidence": "written"})
    primary, secondary = AGENCIES[0], AGENCIES[1]   # the demo transition leads' schools
    pupils = [pupil(n) for n in range(CLASS_SIZE)]
    schools_with_consent(stack["gateway"], primary, secondary, pupils, SECRET)
    (tmp_path / f"blwyddyn-6-{lang}.csv").write_text(as_csv(pupils), encoding="utf-8")
    browser = ROOT / "tests" / "browser"
    journeys = {
        "clinic": [browser / "journey.py", "--site", school, "--room", f"Ystafell {uuid.uuid4().hex[:6]}",
                   "--day", (date.today() - timedelta(days=1)).isoformat(),
                   "--upn", make_upn(uuid.uuid4().int % 10**9)],
        "referral": [browser / "referral_journey.py", "--to", health, "--upn", child],
        "transition": [browser / "transition_journey.py", "--primary", primary, "--secondary", secondary,
                       "--cohort", str(tmp_path / f"blwyddyn-6-{lang}.csv"), "--narrow",
                       str(CLASS_SIZE - FULLY_CONSENTED), "--overdue", "0"],
        "family": [browser / "family_journey.py", *_family_of_a_referred_pupil(stack, school, health)],
    }

    for name, (script, *arguments) in journeys.items():
        with tempfile.TemporaryDirectory() as shots:
            done = subprocess.run([sys.executable, str(script), "--web", stack["web"], "--lang", lang, *arguments,
                                   "--shots", shots], capture_output=True, text=True, timeout=240, cwd=ROOT)
        assert done.returncode == 0, f"{name}: {done.stderr[-3000:]}"


def _family_of_a_referred_pupil(stack, school: str, health: str) -> list[str]:
    """family_journey.py's arguments: a pupil with the parent's consent, referred to the nurse twice (the DSL
    keeps the CAMHS disclosure from the family), and the nurse's request for consent to appointments."""
    teacher, nurse = (bearer("demo-teacher", school, ["school_staff"], SECRET),
                      bearer("demo-nurse", health, ["school_nurse"], SECRET))
    child = {"upn": make_upn(uuid.uuid4().int % 10**9), "given_name": "Elin", "family_name": "Morgan",
             "date_of_birth": "2015-06-20"}
    _post(stack, "/api/v1/consents", teacher, {
        "child": child, "given_by": {"name": "Rhian Morgan", "relationship": "parent"}, "recipients": [health],
        "purposes": ["referral"], "categories": ["contact", "health_wellbeing"], "evidence": "written"})
    raised = [_post(stack, "/api/v1/referrals", teacher, {
        "child": child, "to_org": health, "service": service, "reason": "low mood", "details": "Quiet in class.",
        "urgency": "routine", "share": share, "information": {}})
        for service, share in (("school_nursing", ["contact", "health_wellbeing"]), ("camhs", ["contact"]))]

    def received() -> bool:
        inbox = requests.get(stack["gateway"] + "/api/v1/inbox/referrals", headers=nurse, timeout=30).json()
        return {r["id"] for r in raised} <= {item["id"] for item in inbox}
    wait_until(received, timeout=20, message="both referrals reach the nurse")
    _post(stack, "/api/v1/consent-requests", nurse, {"child": child, "recipients": [health],
                                                     "purposes": ["appointment"], "categories": ["contact"]})
    return ["--upn", child["upn"], "--given_name", child["given_name"], "--family_name", child["family_name"],
            "--date_of_birth", child["date_of_birth"], "--child_ref", raised[0]["child_ref"]]
