"""A class of 28 from the primary to the secondary in headless Chromium, in English and in Welsh.

consent, referrals, transitions, the gateway and the web run as real nameko containers (fresh
PostgreSQL databases) on the real RabbitMQ, on a virtual host of their own, since the gateway
calls the services by their fixed names. Each language has its own pair of schools (a web of
its own, whose demonstration transition leads are theirs): an agreement between them for the
transition purpose, and each parent's consent recorded through the gateway, 20 of them to
every category and 8 to identifiers and attendance only. One earlier record has gone overdue
(the transitions service's clock moved past its acknowledgement period). The browser journey
(tests/browser/transition_journey.py, a process of its own as in test_clinic_journey.py) then
uploads the class as a CSV (first without a school or a file), sees what each record will
withhold and why, sends them through consent, and the secondary's lead acknowledges them
and downloads the cohort as a Common Transfer File; the primary sees every receipt. Uploading
the cohort as a CTF from the MIS, and the refusals, are driven as a browser without JavaScript
would (form POSTs and redirects).
"""
from __future__ import annotations

import dataclasses
import json
import os
import random
import re
import subprocess
import sys
import tempfile
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from consent.service import ConsentService
from gateway.service import GatewayService
from pont_shared.config import Settings
from pont_shared.testing import (
    MovableClock,
    bearer,
    fresh_database,
    http_url,
    own_vhost,
    random_name,
    start_container,
    wait_until,
)
from pont_shared.testing.cohort import (
    CATEGORIES,
    CLASS_SIZE,
    FULLY_CONSENTED,
    as_csv,
    post,
    pupil,
    schools_with_consent,
)
from pont_shared.testing.fixtures import delete_queues
from referrals.service import ReferralsService
from transitions import ctf
from transitions.service import TransitionsService
from web.service import WebService

pytestmark = [pytest.mark.integration, pytest.mark.browser]

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
SCREENSHOTS = ROOT / "docs" / "screenshots"
ACK_DAYS = 10


@dataclasses.dataclass
class Stack:
    gateway: str
    env: dict
    clock: MovableClock

    def settings(self, name: str, database_url: str, **extra: str) -> Settings:
        return dataclasses.replace(Settings.from_env(name, {**self.env, **extra}, http_port=0),
                                   database_url=database_url)


@pytest.fixture(scope="module")
def stack():
    """consent, referrals, transitions and the gateway on a virtual host of their own."""
    containers = []
    with ExitStack() as resources:
        uri = resources.enter_context(own_vhost("pont_web_transitions"))
        env = {"AMQP_URI": uri, "PONT_RETRY_DELAYS": "0.05,0.1,0.2,0.4", "PONT_OUTBOX_POLL_SECONDS": "0.2",
               "PONT_LOG_LEVEL": "WARNING", "PONT_ENV": "development"}
        clock = MovableClock()
        found = Stack("", env, clock)
        consent_db, referrals_db, transitions_db = (resources.enter_context(fresh_database(f"pont_webtr_{key}"))
                                                    for key in ("consent", "referrals", "transitions"))
        try:
            containers.append(start_container(ConsentService, found.settings("consent", consent_db), "consent"))
            containers.append(start_container(ReferralsService, found.settings("referrals", referrals_db),
                                              "referrals"))
            containers.append(start_container(
                TransitionsService, found.settings("transitions", transitions_db), "transitions",
                {"PONT_CLOCK": clock, "TRANSITIONS_ACK_PERIOD_SECONDS": ACK_DAYS * 86400,
                 "TRANSITIONS_OVERDUE_CHECK_SECONDS": 0.2}))
            gateway = start_container(GatewayService, found.settings("gateway", "sqlite://"), "gateway")
            containers.append(gateway)
            found.gateway = http_url(gateway)
            wait_until(lambda: requests.get(found.gateway + "/ready", timeout=5).status_code == 200, timeout=20)
            yield found
        finally:
            for container in reversed(containers):
                container.stop()
                delete_queues(container)


def _school() -> str:
    """A school with a 7-digit LAEstab number (a CTF's file name is made of them), unique to the run."""
    return f"school:6{random.randint(10, 99)}{random.randint(0, 9999):04d}"


def _one_overdue(stack: Stack, primary: str, secondary: str) -> str:
    """A record sent earlier and never acknowledged: the clock moves past its period until it is overdue."""
    lead = bearer("demo-lead", primary, ["transition_lead", "dsl"])
    child = pupil(99)
    post(stack.gateway, "/api/v1/consents", bearer("demo-teacher", primary, ["school_staff"]), {
        "child": child, "given_by": {"name": "Rhiant", "relationship": "parent"}, "recipients": [secondary],
        "purposes": ["transition"], "evidence": "written", "categories": CATEGORIES})
    [record_id] = post(stack.gateway, "/api/v1/transitions", lead,
                        {"to_school": secondary, "pupils": [{"child": child}], "send": True})["ids"]

    def overdue() -> bool:
        mine = requests.get(stack.gateway + "/api/v1/transitions", params={"status": "overdue"}, headers=lead,
                            timeout=30).json()
        return any(item["id"] == record_id for item in mine)

    stack.clock.offset = timedelta(days=ACK_DAYS + 1)
    try:
        wait_until(overdue, timeout=20, interval=0.2)
    finally:
        stack.clock.offset = timedelta()
    return record_id


@contextmanager
def _web(stack: Stack, primary: str, secondary: str):
    web = start_container(WebService, stack.settings("web", "sqlite://", PONT_AGENCIES=f"{primary},{secondary}",
                                                     PONT_GATEWAY_URL=stack.gateway), random_name("web"))
    try:
        url = http_url(web)
        wait_until(lambda: requests.get(url + "/ready", timeout=5).status_code == 200, timeout=20)
        yield url
    finally:
        web.stop()
        delete_queues(web)


def _signed_in(url: str, who: str) -> tuple[requests.Session, str]:
    client = requests.Session()
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get(url + "/sign-in", timeout=10).text).group(1)
    client.post(url + "/sign-in", data={"user": who, "csrf": csrf}, timeout=10).raise_for_status()
    return client, csrf


@pytest.mark.parametrize("lang", ["en", "cy"])
def test_a_class_of_28_is_uploaded_sent_acknowledged_and_downloaded_as_ctf(stack, lang):
    primary, secondary = _school(), _school()
    pupils = [pupil(n) for n in range(CLASS_SIZE)]
    schools_with_consent(stack.gateway, primary, secondary, pupils)
    _one_overdue(stack, primary, secondary)
    with _web(stack, primary, secondary) as url, tempfile.TemporaryDirectory() as work:
        cohort = Path(work) / "blwyddyn-6.csv"
        cohort.write_text(as_csv(pupils), encoding="utf-8")
        command = [sys.executable, str(HERE / "transition_journey.py"), "--web", url, "--lang", lang,
                   "--primary", primary, "--secondary", secondary, "--cohort", str(cohort),
                   "--narrow", str(CLASS_SIZE - FULLY_CONSENTED), "--overdue", "1", "--shots", str(SCREENSHOTS)]
        if os.environ.get("PONT_SCREENSHOTS", "1") != "0":
            command.append("--shots-wanted")
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)

    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["pages_checked"] == [
        "sign-in", "transitions", "transition-upload", "transition-upload-error", "transitions-prepared",
        "transitions-sent", "sign-in", "transition-inbox", "transition-inbox-acknowledged", "sign-in",
        "transitions-acknowledged"]
    assert result["ctf_pupils"] == CLASS_SIZE + 1  # the class and the record that went overdue


def _mis_ctf(pupils: list[dict], source: str, destination: str) -> bytes:
    """A CTF as the school's MIS exports it: identifiers and attendance of each pupil."""
    carried = [{"identifiers": {**child, "gender": "F"},
                "attendance": {"year": 2025, "sessions_possible": 380, "sessions_authorised": 4,
                               "sessions_unauthorised": 1}} for child in pupils]
    return ctf.export(source, destination, carried, datetime.now(UTC))


def test_a_cohort_uploaded_as_the_mis_ctf_is_prepared_and_one_addressed_elsewhere_is_refused(stack):
    primary, secondary, elsewhere = _school(), _school(), _school()
    pupils = [pupil(n) for n in range(3)]
    schools_with_consent(stack.gateway, primary, secondary, pupils)
    with _web(stack, primary, secondary) as url:
        lead, csrf = _signed_in(url, "lead")

        def upload(data: bytes, name: str, **form) -> requests.Response:
            return lead.post(url + "/transitions/new", headers={"Accept-Language": "en"}, timeout=30,
                             data={"csrf": csrf, "to_school": secondary, **form}, files={"cohort": (name, data)})

        misdirected = upload(_mis_ctf(pupils, primary, elsewhere), "6612001_CTF_elsewhere_001.xml")
        broken = upload(b"<CTfile><Header/></CTfile>", "export.xml")
        prepared = upload(_mis_ctf(pupils, primary, secondary), "export.xml", key="ctf-upload-1")

    assert misdirected.status_code == 422 and "Choose the school the file is addressed to" in misdirected.text
    assert broken.status_code == 422 and "This is not a Common Transfer File from your school" in broken.text
    assert prepared.status_code == 200 and prepared.url.endswith("/transitions?status=prepared&done=prepared")
    for child in pupils:
        assert child["upn"] in prepared.text
    assert prepared.text.count('class="status status--prepared"') == len(pupils)


def test_the_transition_pages_need_their_role_and_the_csrf_token(stack):
    primary, secondary = _school(), _school()
    with _web(stack, primary, secondary) as url:
        teacher, _ = _signed_in(url, "teacher")
        lead, csrf = _signed_in(url, "lead")

        refused = [teacher.get(url + path, allow_redirects=False, timeout=10).status_code
                   for path in ("/transitions", "/transitions/new", "/transitions/inbox")]
        forged = lead.post(url + "/transitions/send", data={"csrf": "guess", "to_school": secondary},
                           allow_redirects=False, timeout=10)
        not_a_school = lead.post(url + "/transitions/send", data={"csrf": csrf, "to_school": "x"},
                                 allow_redirects=False, timeout=10)
        no_such_ctf = lead.get(url + "/transitions/ctf", params={"from_school": "x", "to_school": secondary},
                               allow_redirects=False, timeout=10)

    assert refused == [403, 403, 403]
    assert forged.status_code == 403
    assert not_a_school.status_code == 303 and not_a_school.headers["Location"].endswith("/transitions")
    assert no_such_ctf.status_code == 404
