"""A referral from the school to the school nurse and back, in headless Chromium, in English and in Welsh.

gateway, consent, referrals, bookings, the nurse's and the school's agency_link and the web run as
real nameko containers
(fresh PostgreSQL databases) on the real RabbitMQ, on a virtual host of their own: the gateway
calls `referrals` and `consent` by fixed names, which must never reach another run's services.
The test records the parent's consent through the gateway; the browser journey
(tests/browser/referral_journey.py, a process of its own as in test_clinic_journey.py) then has
the teacher raise the referral on its form (first with a UPN the gateway refuses), the nurse
find it in the inbox, accept and close it, and the teacher see it closed, with each page
checked for its `lang`, its heading and axe-core. Screenshots go to docs/screenshots/.
A second journey (tests/browser/consent_journey.py) raises a referral no consent covers, records
the parent's consent from its page, waits for its release, and withdraws the consent at the end.
Withdraw, decline and the status filter are driven as a browser without JavaScript would
(form POSTs and redirects), which is what the pages must also work with.
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import uuid
from contextlib import ExitStack
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests
from nameko.standalone.rpc import ServiceRpcProxy

from agency_link.service import AgencyLinkService
from bookings.service import BookingsService
from consent.service import ConsentService
from gateway.rpc import agency_link_name
from gateway.service import GatewayService
from pont_shared.config import Settings
from pont_shared.identity import make_upn
from pont_shared.testing import bearer, fresh_database, http_url, random_name, signed, start_container, wait_until
from pont_shared.testing.fixtures import delete_queues
from referrals.service import ReferralsService
from web.service import WebService

pytestmark = [pytest.mark.integration, pytest.mark.browser]

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
SCREENSHOTS = ROOT / "docs" / "screenshots"
CATEGORIES = ["contact", "health_wellbeing"]


def _vhost(*command: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *command], check=True, capture_output=True, timeout=60)


@dataclasses.dataclass
class Stack:
    web: str
    gateway: str
    school: str
    health: str
    broker: str

    def teacher(self) -> dict:
        return bearer("demo-teacher", self.school, ["school_staff"])  # the web's demonstration teacher

    def nurse(self) -> dict:
        return bearer("demo-nurse", self.health, ["school_nurse"])


@pytest.fixture(scope="module")
def stack():
    """The services under a virtual host of their own; the school and the nurse's trust share referrals, and the
    nurse runs clinics on the school's site."""
    school, health = f"school:w{uuid.uuid4().hex[:10]}", f"health:w{uuid.uuid4().hex[:8]}"
    vhost = random_name("pont_web_referrals")
    _vhost("add_vhost", vhost)
    containers = []
    try:
        _vhost("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        env = {"AMQP_URI": f"amqp://guest:guest@127.0.0.1:5672/{vhost}", "PONT_RETRY_DELAYS": "0.05,0.1,0.2,0.4",
               "PONT_OUTBOX_POLL_SECONDS": "0.2", "PONT_LOG_LEVEL": "WARNING", "PONT_ENV": "development"}

        def settings(name: str, database_url: str, **extra: str) -> Settings:
            return dataclasses.replace(Settings.from_env(name, {**env, **extra}, http_port=0),
                                       database_url=database_url)

        with ExitStack() as databases:
            consent_db, referrals_db, link_db, bookings_db, school_link_db = (
                databases.enter_context(fresh_database(f"pont_webref_{key}"))
                for key in ("consent", "referrals", "link", "bookings", "school_link"))
            try:
                containers.append(start_container(ConsentService, settings("consent", consent_db), "consent"))
                containers.append(start_container(ReferralsService, settings("referrals", referrals_db), "referrals"))
                containers.append(start_container(BookingsService, settings("bookings", bookings_db), "bookings"))
                for org, database in ((health, link_db), (school, school_link_db)):
                    link = agency_link_name(org)
                    containers.append(start_container(AgencyLinkService, settings(link, database), link, {"org": org}))
                gateway = start_container(GatewayService, settings("gateway", "sqlite://"), "gateway")
                containers.append(gateway)
                web = start_container(WebService, settings("web", "sqlite://", PONT_AGENCIES=f"{school},{health}",
                                                           PONT_GATEWAY_URL=http_url(gateway)), random_name("web"))
                containers.append(web)
                found = Stack(http_url(web), http_url(gateway), school, health, env["AMQP_URI"])
                wait_until(lambda: requests.get(found.web + "/ready", timeout=5).status_code == 200, timeout=20)
                _agreement(found)
                yield found
            finally:
                for container in reversed(containers):
                    container.stop()
                    delete_queues(container)
    finally:
        _vhost("delete_vhost", vhost)


def _post(stack: Stack, path: str, who: dict, body: dict, **headers) -> dict:
    response = requests.post(stack.gateway + path, json=body, headers={**who, **headers}, timeout=30)
    assert response.status_code in (200, 201), response.text
    return response.json()


def _agreement(stack: Stack) -> None:
    admin = bearer("admin", "local_authority:cardiff", ["admin"])
    created = _post(stack, "/api/v1/agreements", admin, {
        "parties": [stack.school, stack.health], "purposes": ["referral"], "categories": CATEGORIES,
        "valid_from": "2020-01-01", "valid_to": "2099-12-31"})
    for party in (stack.school, stack.health):
        _post(stack, f"/api/v1/agreements/{created['id']}/approve", bearer("admin", party, ["admin"]), {})


def consented_child(stack: Stack) -> dict:
    """A pupil whose parent consented to the school sharing CATEGORIES with the nurse's trust for a referral."""
    child = {"upn": make_upn(uuid.uuid4().int % 10**9), "given_name": "Cerys", "family_name": "Jones",
             "date_of_birth": "2015-03-14"}
    _post(stack, "/api/v1/consents", stack.teacher(), {
        "child": child, "given_by": {"name": "Rhian Jones", "relationship": "parent"},
        "recipients": [stack.health], "purposes": ["referral"], "categories": CATEGORIES, "evidence": "written"})
    return child


def raise_referral(stack: Stack) -> str:
    """A referral the teacher raised through the gateway, once it has reached the nurse's inbox."""
    child = consented_child(stack)
    raised = _post(stack, "/api/v1/referrals", stack.teacher(), {
        "child": child, "to_org": stack.health, "service": "school_nursing", "reason": "low mood",
        "details": "Withdrawn in class for three weeks.", "urgency": "urgent", "share": CATEGORIES,
        "information": {"health_wellbeing": "Reports poor sleep."}}, **{"Idempotency-Key": str(uuid.uuid4())})
    assert raised["status"] == "sent", raised

    def in_inbox() -> bool:
        inbox = requests.get(stack.gateway + "/api/v1/inbox/referrals", headers=stack.nurse(), timeout=30)
        return inbox.status_code == 200 and any(item["id"] == raised["id"] for item in inbox.json())

    wait_until(in_inbox, timeout=10)
    return raised["id"]


@pytest.mark.parametrize("lang", ["en", "cy"])
def test_the_school_raises_a_referral_the_nurse_accepts_and_closes_it_and_the_school_sees_it_closed(stack, lang):
    child = consented_child(stack)
    command = [sys.executable, str(HERE / "referral_journey.py"), "--web", stack.web, "--lang", lang,
               "--to", stack.health, "--upn", child["upn"], "--shots", str(SCREENSHOTS)]
    if os.environ.get("PONT_SCREENSHOTS", "1") != "0":
        command.append("--shots-wanted")
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, cwd=ROOT)

    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["pages_checked"] == [
        "sign-in", "referrals", "referral-new", "referral-new-error", "referral-raised", "referrals-sent",
        "sign-in", "inbox", "referral", "referral-accepted", "referral-close-error",
        "referral-closed", "sign-in", "referrals-closed", "referral-school"]


@pytest.fixture
def signed_in(stack):
    """Sign in as a browser without JavaScript would; the sessions are closed after the test (a kept-alive
    connection would hold the web server's stop)."""
    opened: list[requests.Session] = []

    def sign_in(who: str) -> SignedIn:
        user = _signed_in(stack, who)
        opened.append(user.client)
        return user

    yield sign_in
    for client in opened:
        client.close()


@pytest.mark.parametrize("lang", ["en", "cy"])
def test_a_referral_held_for_consent_is_released_once_the_school_records_it_and_the_consent_is_withdrawn(stack,
                                                                                                      lang):
    unconsented = make_upn(uuid.uuid4().int % 10**9)
    command = [sys.executable, str(HERE / "consent_journey.py"), "--web", stack.web, "--lang", lang,
               "--to", stack.health, "--upn", unconsented, "--shots", str(SCREENSHOTS)]
    if os.environ.get("PONT_SCREENSHOTS", "1") != "0":
        command.append("--shots-wanted")
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, cwd=ROOT)

    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["pages_checked"] == [
        "sign-in", "referral-preview", "referral-held", "consent-new", "consent-new-error", "referral-consent-recorded",
        "referral-released", "pupils", "pupils-found", "consents", "sign-in", "referral-closed", "sign-in",
        "referral-chronology",
        "consents-withdraw-error", "consents-withdrawn", "sign-in", "pupils-found-dsl", "child-shared"]


def test_consent_pages_need_a_consent_role_and_the_csrf_token_and_refuse_a_bad_reference(stack, signed_in):
    teacher, social_worker = signed_in("teacher"), signed_in("social-worker")
    child = consented_child(stack)

    forged = teacher.client.post(stack.web + "/consents/new", data={"csrf": "guess", **child}, allow_redirects=False,
                                 timeout=10)
    refused = social_worker.client.get(stack.web + "/consents/new", allow_redirects=False, timeout=10)
    bad_ref = teacher.client.get(stack.web + "/children/c%20x/consents", allow_redirects=False, timeout=10)
    nobody = teacher.client.get(stack.web + "/children/c_unknown/consents", headers={"Accept-Language": "en"},
                                timeout=10)

    assert (forged.status_code, refused.status_code, bad_ref.status_code) == (403, 403, 404)
    assert nobody.status_code == 200 and "No consent is recorded for this pupil" in nobody.text


def test_the_dsl_reads_in_welsh_what_a_referral_shared_and_a_teacher_or_an_unknown_pupil_gets_no_ledger(stack,
                                                                                                      signed_in):
    dsl, teacher = signed_in("dsl"), signed_in("teacher")
    referral = requests.get(stack.gateway + f"/api/v1/referrals/{raise_referral(stack)}", headers=stack.teacher(),
                            timeout=10).json()
    shared = f"/children/{referral['child_ref']}/shared"

    found = dsl.client.get(stack.web + "/pupils", params={"q": referral["child"]["upn"]}, timeout=10)
    ledger = dsl.client.get(stack.web + shared, headers={"Accept-Language": "cy"}, timeout=10)
    refused = teacher.client.get(stack.web + shared, allow_redirects=False, timeout=10)
    unknown = dsl.client.get(stack.web + "/children/c_unknown/shared", allow_redirects=False, timeout=10)

    assert f'href="{shared}"' in found.text
    assert ledger.status_code == 200 and "Beth a rannwyd am y disgybl hwn" in ledger.text
    rows = ledger.text.split("<tbody>")[1].split("</tbody>")[0]
    assert rows.count("<tr") == 1 and stack.school in rows and stack.health in rows and "Rhannwyd" in rows
    assert (refused.status_code, unknown.status_code) == (403, 404)


def test_finding_a_pupil_needs_a_whole_valid_upn_or_two_letters_of_a_name(stack, signed_in):
    teacher = signed_in("teacher")
    upn = make_upn(12345)
    wrong_letter = ("B" if upn[0] != "B" else "C") + upn[1:]  # its check letter no longer fits

    bad_upn = teacher.client.get(stack.web + "/pupils", params={"q": wrong_letter}, headers={"Accept-Language": "en"},
                                 timeout=10)
    short = teacher.client.get(stack.web + "/pupils", params={"q": "x"}, headers={"Accept-Language": "cy"}, timeout=10)
    nobody = teacher.client.get(stack.web + "/pupils", params={"q": "Zzyzx"}, headers={"Accept-Language": "en"},
                                timeout=10)

    assert bad_upn.status_code == 422 and "This UPN is not valid" in bad_upn.text
    assert short.status_code == 422 and "Rhowch o leiaf ddwy lythyren o enw" in short.text
    assert nobody.status_code == 200 and "No pupil your school has referred matches that." in nobody.text


def test_only_the_dsl_is_offered_a_safeguarding_basis_which_sends_without_consent_given_a_justification(stack,
                                                                                                       signed_in):
    dsl, teacher = signed_in("dsl"), signed_in("teacher")

    def raised(who: SignedIn, **answers) -> requests.Response:
        form = {"csrf": who.csrf, "key": str(uuid.uuid4()), "upn": make_upn(uuid.uuid4().int % 10**9),
                "given_name": "Gethin", "family_name": "Hughes", "date_of_birth": "2013-11-20", "to_org": stack.health,
                "service": "school_nursing", "urgency": "safeguarding", "reason": "bruising",
                "details": "Unexplained bruising seen in PE.", "share": ["contact", "health_wellbeing"],
                "basis": "safeguarding", **answers}
        return who.client.post(stack.web + "/referrals/new", data=form, headers={"Accept-Language": "en"},
                               allow_redirects=False, timeout=30)

    offered = ['name="basis"' in who.client.get(stack.web + "/referrals/new", timeout=10).text
               for who in (dsl, teacher)]
    unjustified = raised(dsl)
    justified = raised(dsl, justification="Bruising and the pupil is afraid to go home.")
    by_teacher = raised(teacher, justification="Bruising.")

    assert offered == [True, False]
    assert unjustified.status_code == 422 and "Write why the pupil&#39;s safety justifies" in unjustified.text
    assert justified.status_code == by_teacher.status_code == 303, (justified.text, by_teacher.text)
    shown = [requests.get(stack.gateway + "/api/v1" + r.headers["Location"], headers=stack.teacher(),
                          timeout=10).json() for r in (justified, by_teacher)]
    assert [(r["basis"], r["status"]) for r in shown] == [("safeguarding", "sent"), ("consent", "awaiting_consent")]


def test_without_javascript_consent_is_recorded_for_the_child_and_withdrawn_with_a_reason(stack, signed_in):
    teacher = signed_in("teacher")
    child = {"upn": make_upn(uuid.uuid4().int % 10**9), "given_name": "Nia", "family_name": "Morgan",
             "date_of_birth": "2013-05-02"}
    form = {"csrf": teacher.csrf, "key": str(uuid.uuid4()), **child, "given_by_name": "Huw Morgan",
            "relationship": "carer", "evidence": "verbal", "recipients": [stack.health], "purposes": ["referral"],
            "categories": ["contact", "health_wellbeing"], "expires_on": "2099-07-31"}

    recorded = teacher.client.post(stack.web + "/consents/new", data=form, allow_redirects=False, timeout=10)
    again = teacher.client.post(stack.web + "/consents/new", data=form, allow_redirects=False, timeout=10)

    assert recorded.status_code == 303 and recorded.headers["Location"].startswith("/children/"), recorded.text
    assert again.headers["Location"] == recorded.headers["Location"]  # the same Idempotency-Key: one consent
    child_ref = recorded.headers["Location"].split("/")[2]
    found = teacher.client.get(stack.web + "/pupils", params={"q": child["upn"]}, headers={"Accept-Language": "en"},
                               timeout=10)
    assert f'href="/children/{child_ref}/consents">Consent only<' in found.text  # never referred: by UPN only
    listed = requests.get(stack.gateway + f"/api/v1/children/{child_ref}/consents", headers=stack.teacher(),
                          timeout=10).json()
    assert [(c["status"], c["given_by"]["relationship"], c["evidence"], c["expires_on"]) for c in listed] == [
        ("active", "carer", "verbal", "2099-07-31")]
    no_reason = teacher.client.post(stack.web + f"/consents/{listed[0]['id']}/withdraw",
                                    data={"csrf": teacher.csrf, "child_ref": child_ref, "reason": " "},
                                    headers={"Accept-Language": "en"}, allow_redirects=False, timeout=10)
    withdrawn = teacher.client.post(stack.web + f"/consents/{listed[0]['id']}/withdraw",
                                    data={"csrf": teacher.csrf, "child_ref": child_ref, "reason": "carer asked"},
                                    allow_redirects=False, timeout=10)

    assert no_reason.status_code == 422 and "Give the reason for withdrawing" in no_reason.text
    assert (withdrawn.status_code, withdrawn.headers["Location"]) == (303, f"/children/{child_ref}/consents")
    listed = requests.get(stack.gateway + f"/api/v1/children/{child_ref}/consents", headers=stack.teacher(),
                          timeout=10).json()
    assert [c["status"] for c in listed] == ["withdrawn"]


def test_a_school_user_is_refused_the_inbox_and_a_referral_action_needs_the_csrf_token(stack):
    referral_id = raise_referral(stack)
    client = requests.Session()
    csrf = _csrf(client, stack.web)
    client.post(stack.web + "/sign-in", data={"user": "teacher", "csrf": csrf}, timeout=10)

    inbox = client.get(stack.web + "/inbox", allow_redirects=False, timeout=10)
    accept = client.post(stack.web + f"/referrals/{referral_id}/accept", data={"csrf": csrf},
                         allow_redirects=False, timeout=10)
    forged = client.post(stack.web + f"/referrals/{referral_id}/withdraw", data={"csrf": "guess"},
                         allow_redirects=False, timeout=10)
    unknown = client.get(stack.web + f"/referrals/{uuid.uuid4()}", allow_redirects=False, timeout=10)

    assert (inbox.status_code, accept.status_code, forged.status_code, unknown.status_code) == (403, 403, 403, 404)


def test_without_javascript_the_school_withdraws_one_the_nurse_declines_another_and_the_filter_shows_each(stack):
    withdrawn, declined = raise_referral(stack), raise_referral(stack)
    teacher, nurse = _signed_in(stack, "teacher"), _signed_in(stack, "nurse")

    withdraw = teacher.client.post(stack.web + f"/referrals/{withdrawn}/withdraw", data={"csrf": teacher.csrf},
                                   allow_redirects=False, timeout=10)
    decline = nurse.client.post(stack.web + f"/referrals/{declined}/decline",
                                data={"csrf": nurse.csrf, "reason_code": "no_capacity", "reason": "Waiting list full."},
                                allow_redirects=False, timeout=10)

    assert (withdraw.status_code, withdraw.headers["Location"]) == (303, f"/referrals/{withdrawn}")
    assert (decline.status_code, decline.headers["Location"]) == (303, f"/referrals/{declined}")
    shown = nurse.client.get(stack.web + decline.headers["Location"], headers={"Accept-Language": "en"}, timeout=10)
    assert 'id="referral-status">Declined<' in shown.text
    wait_until(lambda: f"/referrals/{declined}" in _listed(stack, teacher, "declined"), timeout=10)
    only_withdrawn = _listed(stack, teacher, "withdrawn")
    assert f"/referrals/{withdrawn}" in only_withdrawn and f"/referrals/{declined}" not in only_withdrawn


def _clinic(stack: Stack, day: str, room: str, upns: list[str]) -> list[dict]:
    """The nurse's session in a room on the school's site on `day`, each pupil booked into a slot of it."""
    session = _post(stack, "/api/v1/sessions", stack.nurse(), {
        "site": stack.school, "room": room, "service": "school_nursing", "date": day, "start": "09:00",
        "end": "10:00", "slot_minutes": 20, "capacity_per_slot": 1})
    return [_post(stack, "/api/v1/appointments", stack.nurse(), {
        "slot_id": slot["id"], "child": {"upn": upn, "given_name": "Booked", "family_name": "Bynurse",
                                         "date_of_birth": "2015-01-01"}})
        for slot, upn in zip(session["slots"], upns, strict=False)]


def test_the_host_school_sees_its_pupils_out_of_lessons_by_time_room_and_name_never_why(stack, signed_in):
    """API and pages: the school names the pupils it referred, not the others, and never sees the reason."""
    referral = requests.get(stack.gateway + f"/api/v1/referrals/{raise_referral(stack)}", headers=stack.teacher(),
                            timeout=10).json()
    day, room = (date.today() + timedelta(days=1)).isoformat(), f"Ystafell {uuid.uuid4().hex[:6]}"
    referred, unreferred = referral["child"]["upn"], make_upn(uuid.uuid4().int % 10**9)
    booked = _clinic(stack, day, room, [referred, unreferred])
    cancelled = _clinic(stack, day, room + " B", [make_upn(uuid.uuid4().int % 10**9)])[0]
    _post(stack, f"/api/v1/appointments/{cancelled['id']}/cancel", stack.nurse(), {"reason": "family asked"})
    teacher = signed_in("teacher")

    def listed() -> list[dict]:
        answer = requests.get(stack.gateway + "/api/v1/out-of-lessons", params={"date": day},
                              headers=stack.teacher(), timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.json()

    wait_until(lambda: _school_link_statuses(stack, day) == {
        booked[0]["id"]: "booked", booked[1]["id"]: "booked", cancelled["id"]: "cancelled"}, timeout=15,
        message="the school's agency link learns of the bookings and the cancellation")
    out = listed()
    refused = requests.get(stack.gateway + "/api/v1/out-of-lessons", headers=stack.nurse(), timeout=10)
    bad_day = requests.get(stack.gateway + "/api/v1/out-of-lessons", params={"date": "tomorrow"},
                           headers=stack.teacher(), timeout=10)
    page = teacher.client.get(stack.web + "/out-of-lessons", params={"date": day},
                              headers={"Accept-Language": "cy"}, timeout=10)
    far_off = teacher.client.get(stack.web + "/out-of-lessons", params={"date": "2300-01-01"}, timeout=10)

    assert [(item["appointment_id"], item["room"], item["status"]) for item in out] == [
        (booked[0]["id"], room, "booked"), (booked[1]["id"], room, "booked")]
    assert out[0]["pupil"] == {"upn": referred, "given_name": "Cerys", "family_name": "Jones"}
    assert out[1]["pupil"] is None
    assert (out[0]["start"], out[1]["end"]) == (_in_wales(day, time(9)), _in_wales(day, time(9, 40)))
    assert not {"service", "provider_org", "referral_id", "reason"} & {key for item in out for key in item}
    assert "school_nursing" not in json.dumps(out) and stack.health not in json.dumps(out)
    assert refused.status_code == 403
    assert bad_day.status_code == 422 and bad_day.json()["errors"][0]["field"] == "query.date"
    assert page.status_code == 200 and "Disgyblion allan o wersi" in page.text
    assert far_off.status_code == 422 and "Enter a date, for example 2027-03-02" in far_off.text
    rows = page.text.split("<tbody>")[1].split("</tbody>")[0]
    assert rows.count("<tr") == 2 and "Cerys Jones" in rows and "09:00" in rows and room in rows
    assert "Disgybl nad yw eich ysgol wedi" in rows and "Booked Bynurse" not in page.text
    assert "low mood" not in page.text and "Withdrawn in class" not in page.text

    for lang in ("en", "cy"):
        command = [sys.executable, str(HERE / "out_of_lessons_journey.py"), "--web", stack.web, "--lang", lang,
                   "--day", day, "--room", room, "--named", "Cerys Jones", "--unnamed", "1",
                   "--withheld", "low mood", "--shots", str(SCREENSHOTS)]
        if os.environ.get("PONT_SCREENSHOTS", "1") != "0":
            command.append("--shots-wanted")
        done = subprocess.run(command, capture_output=True, text=True, timeout=180, cwd=ROOT)
        assert done.returncode == 0, done.stderr[-3000:]
        assert json.loads(done.stdout.strip().splitlines()[-1])["pages_checked"] == [
            "sign-in", "out-of-lessons-today", "out-of-lessons-error", "out-of-lessons"]


def _school_link_statuses(stack: Stack, day: str) -> dict[str, str]:
    """What the school's own agency link holds of the day's appointments on its site: id → status."""
    teacher = signed({"sub": "demo-teacher", "org": stack.school, "roles": ["school_staff"]})
    with ServiceRpcProxy(agency_link_name(stack.school), {"AMQP_URI": stack.broker}) as link:
        return {item["appointment_id"]: item["status"] for item in link.appointments(teacher, None, day)}


def _in_wales(day: str, at: time) -> str:
    return datetime.combine(date.fromisoformat(day), at, ZoneInfo("Europe/London")).isoformat()


@dataclasses.dataclass
class SignedIn:
    client: requests.Session
    csrf: str


def _signed_in(stack: Stack, who: str) -> SignedIn:
    """A browser without JavaScript, signed in on the development page as a demonstration person."""
    client = requests.Session()
    csrf = _csrf(client, stack.web)
    signed_in = client.post(stack.web + "/sign-in", data={"user": who, "csrf": csrf}, allow_redirects=False,
                            timeout=10)
    assert signed_in.status_code == 303, signed_in.text
    return SignedIn(client, csrf)


def _listed(stack: Stack, user: SignedIn, status: str) -> str:
    """The school's referrals page, filtered to one status."""
    listed = user.client.get(stack.web + "/referrals", params={"status": status}, timeout=10)
    assert listed.status_code == 200, listed.text
    return listed.text


def _csrf(client: requests.Session, web: str) -> str:
    page = client.get(web + "/sign-in", timeout=10).text
    marker = 'name="csrf" value="'
    return page[page.index(marker) + len(marker):].split('"', 1)[0]


def _in_inbox(stack: Stack, referral_id: str) -> dict | None:
    inbox = requests.get(stack.gateway + "/api/v1/inbox/referrals", headers=stack.nurse(), timeout=30)
    assert inbox.status_code == 200, inbox.text
    return next((item for item in inbox.json() if item["id"] == referral_id), None)


@pytest.mark.parametrize("lang", ["en", "cy"])
def test_a_parent_the_school_invited_withdraws_consent_and_sees_what_was_shared_but_what_the_dsl_kept(stack, lang):
    """The school invites the parent; the DSL keeps the CAMHS disclosure from the family; the parent, on a
    phone, links their child with the code, withdraws the consent staff recorded, and their child's history
    shows the nurse's disclosure and the withdrawal, not the CAMHS one. The nurse's copy is restricted."""
    child = consented_child(stack)
    raised = {service: _post(stack, "/api/v1/referrals", stack.teacher(), {
        "child": child, "to_org": stack.health, "service": service, "reason": "low mood",
        "details": "Withdrawn in class for three weeks.", "urgency": "routine", "share": share, "information": {}})
        for service, share in (("school_nursing", CATEGORIES), ("camhs", ["contact"]))}
    for referral in raised.values():
        assert wait_until(lambda r=referral: _in_inbox(stack, r["id"]), timeout=10)["content"]
    child_ref = raised["camhs"]["child_ref"]
    _post(stack, "/api/v1/consent-requests", stack.nurse(), {
        "child": child, "recipients": [stack.health], "purposes": ["appointment"], "categories": ["contact"]})
    command = [sys.executable, str(HERE / "family_journey.py"), "--web", stack.web, "--lang", lang,
               "--upn", child["upn"], "--given_name", child["given_name"], "--family_name", child["family_name"],
               "--date_of_birth", child["date_of_birth"], "--child_ref", child_ref, "--shots", str(SCREENSHOTS)]
    if os.environ.get("PONT_SCREENSHOTS", "1") != "0":
        command.append("--shots-wanted")

    done = subprocess.run(command, capture_output=True, text=True, timeout=180, cwd=ROOT)

    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["pages_checked"] == [
        "sign-in", "family-invite", "family-invite-error", "family-invite-created", "sign-in", "child-shared",
        "family-exempt", "sign-in", "family", "family-code-error", "family-child", "family-child-withdrawn",
        "family-child-given", "family-preferences", "family-preferences-saved"]
    # the nurse's copies are restricted: the consent both rested on was withdrawn
    for referral in raised.values():
        wait_until(lambda r=referral: (_in_inbox(stack, r["id"]) or {}).get("restricted"), timeout=10,
                   message="the nurse's copy is restricted")
    # the ledger: the parent's withdrawal, by the parent, and the DSL's marking
    ledger = requests.get(stack.gateway + f"/api/v1/children/{child_ref}/disclosures",
                          headers=bearer("demo-dsl", stack.school, ["dsl"]), timeout=30).json()
    assert [e["kind"] for e in ledger] == ["disclosure", "disclosure", "family_exemption", "withdrawal"]
    # and the consent the parent gave the nurse, through the portal, as the parent
    consents = requests.get(stack.gateway + f"/api/v1/children/{child_ref}/consents", headers=stack.nurse(),
                            timeout=30).json()
    assert [(c["evidence"], c["given_by"]["relationship"], c["purposes"]) for c in consents
            if c["status"] == "active"] == [("portal", "parent", ["appointment"])]
    assert ledger[-1]["by"] == "demo-parent" and ledger[2]["basis_ref"] == ledger[1]["id"]
