"""A family is told, by email and in their own language, of their child's clinic appointment at school,
of a consent asked of them, of a consent about to end, and of a transition record sent.

consent, bookings, referrals, transitions and the gateway run as real nameko containers (fresh PostgreSQL databases)
on a RabbitMQ virtual host of their own; consent sends notices to a local SMTP sink (aiosmtpd,
a process of its own). A nurse books pupils into a session through the public API; what the
sink receives is read back from its Maildir.
"""
from __future__ import annotations

import dataclasses
import uuid
from contextlib import ExitStack
from datetime import date, timedelta

import pytest
import requests
from sqlalchemy import create_engine, text

from bookings.service import BookingsService
from consent.service import ConsentService
from gateway.service import GatewayService
from pont_shared.config import Settings
from pont_shared.identity import make_upn
from pont_shared.testing import (
    bearer,
    fresh_database,
    http_url,
    own_vhost,
    smtp_sink,
    start_container,
    wait_until,
)
from pont_shared.testing.fixtures import delete_queues
from referrals.service import ReferralsService
from transitions.service import TransitionsService

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:6]
SCHOOL, HEALTH, SECONDARY = f"school:f{RUN}", f"health:f{RUN}", f"school:g{RUN}"
STAFF = bearer("teacher1", SCHOOL, ["school_staff"])
NURSE = bearer("nurse1", HEALTH, ["school_nurse"])


@dataclasses.dataclass
class Stack:
    gateway: str
    sink: object
    consent_db: str

    def post(self, path: str, who: dict, body: dict, method: str = "POST") -> dict:
        response = requests.request(method, self.gateway + path, json=body, headers=who, timeout=30)
        assert response.status_code in (200, 201), response.text
        return response.json()


@pytest.fixture(scope="module")
def stack():
    containers = []
    with ExitStack() as resources:
        uri = resources.enter_context(own_vhost("pont_notices"))
        sink = resources.enter_context(smtp_sink())
        env = {"AMQP_URI": uri, "PONT_RETRY_DELAYS": "0.05,0.1,0.2", "PONT_OUTBOX_POLL_SECONDS": "0.1",
               "PONT_LOG_LEVEL": "WARNING", "PONT_SMTP_URL": sink.url}
        consent_db = resources.enter_context(fresh_database("pont_notices_consent"))
        bookings_db = resources.enter_context(fresh_database("pont_notices_bookings"))
        referrals_db = resources.enter_context(fresh_database("pont_notices_referrals"))
        transitions_db = resources.enter_context(fresh_database("pont_notices_transitions"))

        def settings(name: str, database_url: str) -> Settings:
            return dataclasses.replace(Settings.from_env(name, env, http_port=0), database_url=database_url)
        try:
            containers.append(start_container(ConsentService, settings("consent", consent_db), "consent",
                                              {"PONT_NOTICES_SECONDS": 0.1, "PONT_CONSENTS_ENDING_SECONDS": 0.2}))
            containers.append(start_container(BookingsService, settings("bookings", bookings_db), "bookings"))
            containers.append(start_container(ReferralsService, settings("referrals", referrals_db), "referrals"))
            containers.append(start_container(TransitionsService, settings("transitions", transitions_db),
                                              "transitions"))
            gateway = start_container(GatewayService, settings("gateway", "sqlite://"), "gateway")
            containers.append(gateway)
            yield Stack(http_url(gateway), sink, consent_db)
        finally:
            for container in reversed(containers):
                container.stop()
                delete_queues(container)


def pupil(name: str) -> dict:
    return {"upn": make_upn(uuid.uuid4().int % 10**9), "given_name": name, "family_name": "Rees",
            "date_of_birth": "2015-02-03"}


def family_member(stack: Stack, child: dict, relationship: str, preferences: dict) -> str:
    """A linked family member with their choices; returns their address."""
    member = bearer(f"family-{uuid.uuid4().hex[:8]}", SCHOOL, ["family"])
    invited = stack.post("/api/v1/family/invites", STAFF, {"child": child, "relationship": relationship})
    stack.post("/api/v1/family/links", member, {"code": invited["code"]})
    stack.post("/api/v1/family/preferences", member, preferences, method="PUT")
    return preferences.get("email")


def book(stack: Stack, children: list[dict], room: str) -> None:
    session = stack.post("/api/v1/sessions", NURSE, {
        "site": SCHOOL, "room": room, "service": "school_nursing", "date": "2030-01-07",
        "start": "09:00", "end": "10:00", "slot_minutes": 20, "capacity_per_slot": 1})
    for child, slot in zip(children, session["slots"], strict=False):
        stack.post("/api/v1/appointments", NURSE, {"slot_id": slot["id"], "child": child})


def to(stack: Stack, address: str) -> list:
    return [message for message in stack.sink.messages() if message["To"] == address]


def test_each_family_member_who_asked_is_told_in_their_language_and_the_service_only_if_consented(stack):
    elis, mali = pupil(f"Elis{RUN}"), pupil(f"Mali{RUN}")
    # Elis's parent consented to the nurse knowing about appointments; Mali's family did not
    stack.post("/api/v1/consents", STAFF, {
        "child": elis, "given_by": {"name": "Rhian Rees", "relationship": "parent"}, "recipients": [HEALTH],
        "purposes": ["appointment"], "categories": ["contact"], "evidence": "written"})
    welsh = family_member(stack, elis, "parent", {"channel": "email", "email": f"rhian-{RUN}@example.cymru",
                                                   "language": "cy"})
    english = family_member(stack, elis, "carer", {"channel": "email", "email": f"sam-{RUN}@example.org",
                                                    "language": "en"})
    family_member(stack, elis, "parent", {"channel": "none", "language": "en"})
    mali_parent = family_member(stack, mali, "parent", {"channel": "email", "email": f"dai-{RUN}@example.cymru",
                                                        "language": "cy"})

    book(stack, [elis, mali], "Ystafell feddygol")

    [cy] = wait_until(lambda: to(stack, welsh), timeout=20)
    [en] = wait_until(lambda: to(stack, english), timeout=20)
    [other] = wait_until(lambda: to(stack, mali_parent), timeout=20)
    assert cy["Subject"] == f"Apwyntiad yn yr ysgol i Elis{RUN}"
    cy_body = cy.get_payload(decode=True).decode()
    assert "Pryd: Dydd Llun, 7 Ionawr 2030, 09:00 tan 09:20" in cy_body and "Ble: Ystafell feddygol" in cy_body
    assert "Gyda: nyrs yr ysgol" in cy_body
    assert en["Subject"] == f"An appointment at school for Elis{RUN}"
    en_body = en.get_payload(decode=True).decode()
    assert "When: Monday, 7 January 2030, 09:00 to 09:20" in en_body and "With: the school nurse" in en_body
    other_body = other.get_payload(decode=True).decode()
    assert "Pryd: Dydd Llun, 7 Ionawr 2030, 09:20 tan 09:40" in other_body
    assert "Gyda:" not in other_body and "nyrs" not in other_body     # no consent: the service is not named
    # three addresses asked, three were told; the member who chose no emails got none
    mine = [m for m in stack.sink.messages() if RUN in m["To"]]
    assert sorted(m["To"] for m in mine) == sorted([welsh, english, mali_parent])


def test_a_sent_notice_keeps_no_content_and_bad_preferences_are_422_naming_the_field(stack):
    child = pupil(f"Gwen{RUN}")
    address = family_member(stack, child, "parent", {"channel": "email", "email": f"gwen-{RUN}@example.cymru",
                                                     "language": "en"})
    book(stack, [child], "Ystafell 2")
    wait_until(lambda: to(stack, address), timeout=20)
    member = bearer(f"family-{RUN}", SCHOOL, ["family"])

    no_address = requests.put(stack.gateway + "/api/v1/family/preferences", headers=member, timeout=30,
                              json={"channel": "email", "language": "cy"})
    bad_language = requests.put(stack.gateway + "/api/v1/family/preferences", headers=member, timeout=30,
                                json={"channel": "none", "language": "fr"})

    assert no_address.status_code == 422 and [e["field"] for e in no_address.json()["errors"]] == ["email"]
    assert bad_language.status_code == 422 and [e["field"] for e in bad_language.json()["errors"]] == ["language"]
    engine = create_engine(stack.consent_db)
    try:
        with engine.connect() as db:
            rows = db.execute(text("SELECT recipient, subject, body, sent_at FROM notices")).all()
    finally:
        engine.dispose()
    assert rows and all(r.sent_at is not None and (r.recipient, r.subject, r.body) == (None, None, None)
                        for r in rows)


def test_a_family_is_told_of_a_consent_asked_of_them_one_ending_and_a_record_sent_to_the_new_school(stack):
    child = pupil(f"Nia{RUN}")
    address = family_member(stack, child, "parent", {"channel": "email", "email": f"nia-{RUN}@example.cymru",
                                                     "language": "cy"})
    admin = bearer("admin", "local_authority:cardiff", ["admin"])
    agreement = stack.post("/api/v1/agreements", admin, {
        "parties": [SCHOOL, SECONDARY], "purposes": ["transition"], "categories": ["education", "attendance"],
        "valid_from": str(date.today() - timedelta(days=1)), "valid_to": str(date.today() + timedelta(days=400))})
    for party in (SCHOOL, SECONDARY):
        stack.post(f"/api/v1/agreements/{agreement['id']}/approve", bearer("admin", party, ["admin"]), {})

    stack.post("/api/v1/consent-requests", NURSE, {"child": child, "recipients": [HEALTH],
                                                   "purposes": ["appointment"], "categories": ["contact"]})
    stack.post("/api/v1/consents", STAFF, {
        "child": child, "given_by": {"name": "Rhian Rees", "relationship": "parent"}, "recipients": [SECONDARY],
        "purposes": ["transition"], "categories": ["education", "attendance"], "evidence": "written",
        "expires_on": str(date.today() + timedelta(days=7))})
    stack.post("/api/v1/transitions", bearer("lead1", SCHOOL, ["transition_lead"]),
               {"to_school": SECONDARY, "pupils": [{"child": child}], "send": True})

    told = wait_until(lambda: len(got := to(stack, address)) == 3 and got, timeout=20,
                      message="three notices: asked, ending, sent")
    subjects = sorted(m["Subject"] for m in told)
    assert subjects == sorted([f"Gofynnir am eich cydsyniad ar gyfer Nia{RUN}",
                               f"Mae cydsyniad am Nia{RUN} yn dod i ben cyn bo hir",
                               f"Anfonwyd cofnod Nia{RUN} i'r ysgol newydd"])
    bodies = "\n".join(m.get_payload(decode=True).decode() for m in told)
    assert "Beth: manylion cyswllt" in bodies and f"Ysgol ({SECONDARY.split(':')[1]})" in bodies
    ends = date.today() + timedelta(days=7)
    assert f"{ends.day} " in bodies and "Yn dod i ben:" in bodies
    # told once: the check for consents ending (every 0.2 s here) found this one again and again meanwhile
    engine = create_engine(stack.consent_db)
    try:
        with engine.connect() as db:
            ending = db.execute(text("SELECT count(*) FROM notices WHERE kind = 'consent_ending' AND child_ref = "
                                     "(SELECT child_ref FROM family_links WHERE given_name = :name)"),
                                {"name": child["given_name"]}).scalar_one()
    finally:
        engine.dispose()
    assert ending == 1
