"""Referrals end to end through the gateway, on the real RabbitMQ and PostgreSQL.

gateway, consent, referrals and one agency_link per agency run as real nameko containers,
each service with its own fresh PostgreSQL database, on a RabbitMQ virtual host of their
own (so the fixed service names the gateway calls — "referrals", "consent" — can never
reach another test run's services). Requests go over HTTP; the agencies' stores are
checked by querying their own databases directly.
"""
from __future__ import annotations

import dataclasses
import json
import subprocess
import uuid
from contextlib import ExitStack
from datetime import timedelta

import pytest
import requests
from nameko.containers import ServiceContainer
from prometheus_client import REGISTRY
from sqlalchemy import create_engine, text

from agency_link.service import AgencyLinkService
from consent.service import ConsentService
from gateway.rpc import agency_link_name
from gateway.service import GatewayService
from pont_shared.config import Settings
from pont_shared.contract.envelope import EVENTS_EXCHANGE
from pont_shared.contract.events import ReferralOverdue
from pont_shared.identity import child_ref, make_upn
from pont_shared.messaging.wire import WireObserver
from pont_shared.testing import (
    MovableClock,
    bearer,
    fresh_database,
    http_url,
    random_name,
    wait_until,
    web_address,
)
from pont_shared.testing.fixtures import delete_queues
from referrals.service import ReferralsService

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:6]
SCHOOL = f"school:r{RUN}"
OTHER_SCHOOL = f"school:o{RUN}"
HEALTH = f"health:h{RUN}"
SOCIAL = f"social_care:s{RUN}"


class Pont:
    """The running stack, its HTTP base URL and the callers the tests act as."""

    def __init__(self, uri: str, urls: dict, settings: dict):
        self.uri, self.urls, self.settings = uri, urls, settings
        self.containers: dict[str, ServiceContainer] = {}
        self.clock = MovableClock()
        self.http = requests.Session()
        self.staff = bearer("teacher1", SCHOOL, ["school_staff"])
        self.dsl = bearer("dsl1", SCHOOL, ["dsl"])
        self.other_school = bearer("teacher9", OTHER_SCHOOL, ["school_staff", "dsl"])
        self.nurse = bearer("nurse1", HEALTH, ["school_nurse"])
        self.social_worker = bearer("sw1", SOCIAL, ["social_worker"])
        self.admin = bearer("admin1", "local_authority:cardiff", ["admin"])

    def start(self, key: str, cls, name: str, extra: dict | None = None) -> ServiceContainer:
        config = {**self.settings[key].nameko_config(), "WEB_SERVER_ADDRESS": web_address(), **(extra or {})}
        container = ServiceContainer(type(cls.__name__, (cls,), {"name": name}), config)
        container.start()
        self.containers[key] = container
        return container

    @property
    def base(self) -> str:
        return http_url(self.containers["gateway"])

    def post(self, path: str, who: dict, body: dict | None = None, **headers):
        return self.http.post(self.base + path, headers={**who, **headers}, json=body, timeout=30)

    def get(self, path: str, who: dict, **params):
        return self.http.get(self.base + path, headers=who, params=params, timeout=30)

    def agency_db(self, org: str):
        return create_engine(self.urls[org])


def _vhost(command: str, name: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", command, name], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pont():
    vhost = random_name("pont_referrals")
    _vhost("add_vhost", vhost)
    subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
                   check=True, capture_output=True, timeout=60)
    uri = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    env = {"AMQP_URI": uri, "PONT_RETRY_DELAYS": "0.05,0.1,0.2,0.4,0.8", "PONT_OUTBOX_POLL_SECONDS": "0.2",
           "PONT_LOG_LEVEL": "WARNING", "PONT_MAX_WORKERS": "20"}
    try:
        with ExitStack() as stack:
            urls = {key: stack.enter_context(fresh_database(f"pont_ref_{key.split(':')[0]}"))
                    for key in ("referrals", "consent", HEALTH, SOCIAL)}
            names = {"gateway": "gateway", "consent": "consent", "referrals": "referrals",
                     HEALTH: agency_link_name(HEALTH), SOCIAL: agency_link_name(SOCIAL)}
            settings = {key: dataclasses.replace(Settings.from_env(name, env, http_port=0),
                                                 database_url=urls.get(key, "sqlite://"))
                        for key, name in names.items()}
            pont = Pont(uri, urls, settings)
            try:
                pont.start("consent", ConsentService, "consent")
                pont.start("referrals", ReferralsService, "referrals",
                           {"PONT_CLOCK": pont.clock, "PONT_REFERRALS_OVERDUE_SECONDS": 0.2})
                pont.start(HEALTH, AgencyLinkService, names[HEALTH], {"org": HEALTH})
                pont.start(SOCIAL, AgencyLinkService, names[SOCIAL], {"org": SOCIAL})
                pont.start("gateway", GatewayService, "gateway")
                created = pont.post("/api/v1/agreements", pont.admin, {
                    "parties": [SCHOOL, HEALTH, SOCIAL], "purposes": ["referral"],
                    "categories": ["contact", "education", "health_wellbeing", "family_context", "safeguarding"],
                    "valid_from": "2020-01-01", "valid_to": "2099-12-31"})
                assert created.status_code == 201, created.text
                for party in (SCHOOL, HEALTH, SOCIAL):
                    approved = pont.post(f"/api/v1/agreements/{created.json()['id']}/approve",
                                         bearer("admin1", party, ["admin"]))
                    assert approved.status_code == 200, approved.text
                yield pont
            finally:
                pont.http.close()  # a kept-alive connection would hold the web server's stop
                for container in reversed(list(pont.containers.values())):
                    container.stop()
                    delete_queues(container)
    finally:
        _vhost("delete_vhost", vhost)


@pytest.fixture
def child():
    serial = uuid.uuid4().int % 10**9
    return {"upn": make_upn(serial), "given_name": f"Ffion{serial}", "family_name": "Jones",
            "date_of_birth": "2014-05-06"}


def give_consent(pont: Pont, child: dict, categories: list[str], recipients=(HEALTH,)) -> dict:
    response = pont.post("/api/v1/consents", pont.staff, {
        "child": child, "given_by": {"name": "Rhian Jones", "relationship": "parent"},
        "recipients": list(recipients), "purposes": ["referral"], "categories": categories, "evidence": "written"})
    assert response.status_code == 201, response.text
    return response.json()


def referral_body(child: dict, **overrides) -> dict:
    body = {"child": child, "to_org": HEALTH, "service": "school_nursing", "reason": "low mood",
            "details": "Withdrawn in class for three weeks.", "urgency": "urgent",
            "share": ["contact", "health_wellbeing", "family_context"],
            "information": {"health_wellbeing": "Reports poor sleep.", "family_context": "Parents separating."}}
    body.update(overrides)
    return body


def inbox_item(pont: Pont, referral_id: str, who: dict | None = None):
    response = pont.get("/api/v1/inbox/referrals", who or pont.nurse)
    assert response.status_code == 200, response.text
    return next((item for item in response.json() if item["id"] == referral_id), None)


def stored_copies(pont: Pont, org: str, referral_id: str) -> list[dict]:
    engine = pont.agency_db(org)
    try:
        with engine.connect() as db:
            rows = db.execute(text("SELECT * FROM disclosures WHERE subject_id = :id"), {"id": referral_id})
            return [dict(row._mapping) for row in rows]
    finally:
        engine.dispose()


def referral(pont: Pont, referral_id: str, who: dict | None = None):
    return pont.get(f"/api/v1/referrals/{referral_id}", who or pont.staff)


class TestRaiseWithConsent:
    def test_is_sent_and_the_agency_store_holds_only_the_consented_categories(self, pont, child):
        observer = WireObserver(pont.uri, bindings=[(EVENTS_EXCHANGE, "#")])
        give_consent(pont, child, ["contact", "health_wellbeing"])

        response = pont.post("/api/v1/referrals", pont.staff, referral_body(child))

        assert response.status_code == 201, response.text
        created = response.json()
        assert created["status"] == "sent"
        assert created["child_ref"] == child_ref(child["upn"], pont.settings["referrals"].child_ref_secret)
        item = wait_until(lambda: inbox_item(pont, created["id"]), timeout=2)
        assert item["content"]["categories"]["health_wellbeing"] == "Reports poor sleep."
        assert item["content"]["categories"]["contact"]["family_name"] == "Jones"
        [copy] = stored_copies(pont, HEALTH, created["id"])
        assert set(copy["content"]["categories"]) == {"contact", "health_wellbeing"}
        assert "Parents separating" not in json.dumps(copy, default=str)
        assert "family_context" not in json.dumps(copy["content"]["categories"])
        observer.wait_for(lambda seen: any(e.type == "pont.referral.sent.v1" and e.data["referral_id"] == created["id"]
                                           for e in seen))
        shared_exchange = b"".join(observer.raw)
        observer.close()
        for personal in (child["upn"], child["given_name"], b"poor sleep", b"low mood"):
            assert (personal.encode() if isinstance(personal, str) else personal) not in shared_exchange

    def test_a_second_open_referral_for_the_same_child_and_service_is_a_conflict_linking_the_first(self, pont, child):
        give_consent(pont, child, ["contact"])
        first = pont.post("/api/v1/referrals", pont.staff, referral_body(child, share=["contact"], information={}))

        again = pont.post("/api/v1/referrals", pont.dsl, referral_body(child, share=["contact"], information={}))

        assert again.status_code == 409
        assert again.headers["Content-Type"] == "application/problem+json"
        assert again.json()["existing"] == f"/api/v1/referrals/{first.json()['id']}"


class TestRaiseWithoutConsent:
    def test_is_held_and_released_by_consent_recorded_afterwards(self, pont, child):
        response = pont.post("/api/v1/referrals", pont.staff, referral_body(
            child, share=["contact", "health_wellbeing"], information={"health_wellbeing": "Poor sleep."}))
        assert response.status_code == 201, response.text
        held = response.json()
        assert held["status"] == "awaiting_consent"
        assert inbox_item(pont, held["id"]) is None

        give_consent(pont, child, ["contact", "health_wellbeing"])

        wait_until(lambda: referral(pont, held["id"]).json()["status"] == "sent", timeout=5)
        item = wait_until(lambda: inbox_item(pont, held["id"]), timeout=3)
        assert set(item["content"]["categories"]) == {"contact", "health_wellbeing"}
        statuses = [step["status"] for step in referral(pont, held["id"]).json()["history"]]
        assert statuses == ["awaiting_consent", "sent"]


class TestSafeguardingBasis:
    def test_a_dsl_with_justification_sends_without_consent_and_the_ledger_says_safeguarding(self, pont, child):
        body = referral_body(child, urgency="safeguarding", service="social_care", to_org=SOCIAL,
                             share=["contact", "safeguarding"], information={"safeguarding": "Disclosure at school."},
                             basis="safeguarding", justification="Child disclosed harm at home today.")

        response = pont.post("/api/v1/referrals", pont.dsl, body)

        assert response.status_code == 201, response.text
        assert response.json()["status"] == "sent"
        ledger = pont.get(f"/api/v1/children/{response.json()['child_ref']}/disclosures", pont.dsl).json()
        entry = next(e for e in ledger if e.get("subject_id") == response.json()["id"])
        assert entry["basis"] == "safeguarding" and entry["to_org"] == SOCIAL
        assert wait_until(lambda: inbox_item(pont, response.json()["id"], pont.social_worker), timeout=2)

    def test_school_staff_may_not_use_it(self, pont, child):
        body = referral_body(child, basis="safeguarding", justification="worried")

        response = pont.post("/api/v1/referrals", pont.staff, body)

        assert response.status_code == 403

    def test_a_dsl_must_give_a_justification(self, pont, child):
        response = pont.post("/api/v1/referrals", pont.dsl, referral_body(child, basis="safeguarding"))

        assert response.status_code == 422
        assert [e["field"] for e in response.json()["errors"]] == ["justification"]


class TestWhoMaySeeIt:
    def test_another_school_and_an_agency_that_is_not_the_recipient_get_404(self, pont, child):
        give_consent(pont, child, ["contact"])
        created = pont.post("/api/v1/referrals", pont.staff, referral_body(child, share=["contact"], information={}))
        referral_id = created.json()["id"]

        assert referral(pont, referral_id, pont.other_school).status_code == 404
        assert referral(pont, referral_id, pont.social_worker).status_code == 404
        assert pont.post(f"/api/v1/referrals/{referral_id}/accept", pont.social_worker).status_code == 404
        assert referral(pont, referral_id, pont.nurse).status_code == 200
        assert referral(pont, str(uuid.uuid4())).status_code == 404

    def test_bad_input_is_422_naming_the_field(self, pont, child):
        body = referral_body({**child, "upn": "A123"}, urgency="soon")

        response = pont.post("/api/v1/referrals", pont.staff, body)

        assert response.status_code == 422
        assert {"child.upn", "urgency"} <= {e["field"] for e in response.json()["errors"]}


class TestFindAChild:
    def test_the_school_finds_its_pupil_by_upn_or_name_and_another_school_does_not(self, pont, child):
        created = pont.post("/api/v1/referrals", pont.staff, referral_body(child, share=["contact"], information={}))
        assert created.status_code == 201, created.text

        by_upn = pont.get("/api/v1/children", pont.dsl, upn=child["upn"])
        by_name = pont.get("/api/v1/children", pont.staff, name=f"{child['given_name'].lower()} jon")
        elsewhere = pont.get("/api/v1/children", pont.other_school, upn=child["upn"])

        assert by_upn.status_code == by_name.status_code == elsewhere.status_code == 200
        expected = [{"child_ref": created.json()["child_ref"], **child}]
        for found in (by_upn.json(), by_name.json()):
            assert [{k: c[k] for k in ("child_ref", *child)} for c in found] == expected and found[0]["referrals"] == 1
        assert elsewhere.json() == []

    def test_by_upn_a_pupil_known_by_consent_alone_is_found_by_the_school_that_recorded_it(self, pont, child):
        recorded = give_consent(pont, child, ["contact"])

        own = pont.get("/api/v1/children", pont.staff, upn=child["upn"])
        by_name = pont.get("/api/v1/children", pont.staff, name=child["given_name"])
        elsewhere = pont.get("/api/v1/children", pont.other_school, upn=child["upn"])

        assert own.status_code == 200 and [(c["child_ref"], c["upn"], c["given_name"], c["referrals"])
                                           for c in own.json()] == [(recorded["child_ref"], child["upn"], None, 0)]
        assert by_name.json() == [] and elsewhere.json() == []

    def test_an_agency_is_refused_and_bad_questions_are_422_naming_the_field(self, pont, child):
        agency = pont.get("/api/v1/children", pont.nurse, name="Jones")
        neither = pont.get("/api/v1/children", pont.staff)
        both = pont.get("/api/v1/children", pont.staff, upn=child["upn"], name="Jones")
        bad_upn = pont.get("/api/v1/children", pont.staff, upn="A123")
        short = pont.get("/api/v1/children", pont.staff, name="J")

        assert agency.status_code == 403
        assert [(r.status_code, [e["field"] for e in r.json()["errors"]]) for r in (neither, both, bad_upn, short)] == [
            (422, ["query.upn"]), (422, ["query.upn"]), (422, ["query.upn"]), (422, ["query.name"])]


class TestPreview:
    def test_shows_what_would_be_shared_now_and_what_held_and_records_nothing(self, pont, child):
        give_consent(pont, child, ["contact", "health_wellbeing"])

        preview = pont.post("/api/v1/referrals/preview", pont.staff, referral_body(child))

        assert preview.status_code == 200, preview.text
        assert {d["category"]: (d["allowed"], d["basis"]) for d in preview.json()["decisions"]} == {
            "contact": (True, "consent"), "health_wellbeing": (True, "consent"), "family_context": (False, None)}
        assert pont.get("/api/v1/referrals", pont.staff, child_ref=preview.json()["child_ref"]).json() == []

    def test_a_dsls_safeguarding_basis_is_flagged_and_staff_may_not_ask_for_it(self, pont, child):
        body = referral_body(child, share=["contact"], information={}, basis="safeguarding",
                             justification="at risk at home")

        dsl = pont.post("/api/v1/referrals/preview", pont.dsl, body)
        staff = pont.post("/api/v1/referrals/preview", pont.staff, body)

        assert dsl.status_code == 200, dsl.text
        assert dsl.json()["flagged_for_review"] is True and dsl.json()["decisions"][0]["basis"] == "safeguarding"
        assert staff.status_code == 403


class TestAgencyDecisions:
    def test_accept_then_close_and_a_decline_show_in_the_schools_chronology_in_order(self, pont, child):
        give_consent(pont, child, ["contact"])
        first = pont.post("/api/v1/referrals", pont.staff, referral_body(child, share=["contact"], information={}))
        second = pont.post("/api/v1/referrals", pont.staff,
                           referral_body(child, service="camhs", share=["contact"], information={}))
        first_id, second_id = first.json()["id"], second.json()["id"]
        wait_until(lambda: inbox_item(pont, first_id) and inbox_item(pont, second_id), timeout=3)

        accepted = pont.post(f"/api/v1/referrals/{first_id}/accept", pont.nurse)
        wait_until(lambda: referral(pont, first_id).json()["status"] == "accepted", timeout=3)
        closed = pont.post(f"/api/v1/referrals/{first_id}/close", pont.nurse,
                           {"outcome": "Six sessions; sleeping better.", "outcome_code": "support_completed"})
        declined = pont.post(f"/api/v1/referrals/{second_id}/decline", pont.nurse,
                             {"reason": "Already open to CAMHS.", "reason_code": "already_involved"})

        assert (accepted.status_code, closed.status_code, declined.status_code) == (200, 200, 200)
        wait_until(lambda: referral(pont, first_id).json()["status"] == "closed", timeout=3)
        wait_until(lambda: referral(pont, second_id).json()["status"] == "declined", timeout=3)
        history = referral(pont, first_id).json()["history"]
        assert [step["status"] for step in history] == ["sent", "accepted", "closed"]
        assert [step["by"] for step in history[1:]] == ["nurse1", "nurse1"]
        assert history[0]["at"] <= history[1]["at"] <= history[2]["at"]
        assert [s["status"] for s in referral(pont, second_id).json()["history"]] == ["sent", "declined"]
        assert pont.post(f"/api/v1/referrals/{second_id}/accept", pont.nurse).status_code == 409
        [copy] = stored_copies(pont, HEALTH, second_id)
        assert copy["note"] == "Already open to CAMHS."  # the free text stays in the agency's own store


class TestConsentWithdrawn:
    def test_the_recipient_no_longer_serves_the_details_and_the_ledger_shows_it(self, pont, child):
        consent = give_consent(pont, child, ["contact", "health_wellbeing"])
        created = pont.post("/api/v1/referrals", pont.staff,
                            referral_body(
                                child, share=["contact", "health_wellbeing"], information={})).json()
        assert wait_until(lambda: inbox_item(pont, created["id"]), timeout=2)["content"]

        withdrawn = pont.post(f"/api/v1/consents/{consent['id']}/withdraw", pont.staff, {"reason": "parent asked"})

        assert withdrawn.status_code == 200, withdrawn.text
        item = wait_until(lambda: (i := inbox_item(pont, created["id"])) and i["restricted"] and i, timeout=3)
        assert item["content"] is None
        assert item["id"] == created["id"] and item["child_ref"] == created["child_ref"]
        ledger = pont.get(f"/api/v1/children/{created['child_ref']}/disclosures", pont.dsl).json()
        assert any(e["kind"] != "disclosure" and e["basis_ref"] == consent["id"] for e in ledger), ledger


class TestOverdue:
    def test_a_passed_deadline_emits_referral_overdue_and_moves_the_metric(self, pont, child):
        observer = WireObserver(pont.uri, bindings=[(EVENTS_EXCHANGE, ReferralOverdue.TYPE)])
        give_consent(pont, child, ["contact"])
        created = pont.post("/api/v1/referrals", pont.staff,
                            referral_body(child, urgency="routine", share=["contact"], information={})).json()
        assert created["status"] == "sent"
        before = REGISTRY.get_sample_value("pont_referrals_overdue_total", {"urgency": "routine"}) or 0

        pont.clock.offset = timedelta(days=15)  # past ten school days, whatever today is

        try:
            observer.wait_for(lambda seen: any(e.data["referral_id"] == created["id"] for e in seen), timeout=5)
            assert REGISTRY.get_sample_value("pont_referrals_overdue_total", {"urgency": "routine"}) > before
            assert referral(pont, created["id"]).json()["overdue"] is True
            assert REGISTRY.get_sample_value("pont_referrals_by_status", {"status": "sent"}) >= 1
        finally:
            pont.clock.offset = timedelta(0)
            observer.close()


class TestAgencyLinkDown:
    def test_twenty_referrals_raised_while_it_is_stopped_all_arrive_once_when_it_starts(self, pont):
        pont.containers[SOCIAL].stop()
        ids = []
        for _ in range(20):
            serial = uuid.uuid4().int % 10**9
            child = {"upn": make_upn(serial), "given_name": "Osian", "family_name": "Price",
                     "date_of_birth": "2013-01-02"}
            response = pont.post("/api/v1/referrals", pont.dsl, referral_body(
                child, to_org=SOCIAL, service="social_care", urgency="safeguarding", share=["contact"],
                information={}, basis="safeguarding", justification="Immediate risk reported."))
            assert response.status_code == 201 and response.json()["status"] == "sent", response.text
            ids.append(response.json()["id"])

        restarted = pont.start(SOCIAL, AgencyLinkService, agency_link_name(SOCIAL), {"org": SOCIAL})

        def arrived():
            listed = {item["id"] for item in pont.get("/api/v1/inbox/referrals", pont.social_worker).json()}
            return set(ids) <= listed

        engine = pont.agency_db(SOCIAL)
        try:
            wait_until(arrived, timeout=10)
            with engine.connect() as db:
                counts = db.execute(text(
                    "SELECT subject_id, count(*) FROM disclosures WHERE subject_id = ANY(:ids) GROUP BY subject_id"),
                    {"ids": ids}).all()
        finally:
            engine.dispose()
            # stopped here, not by the module fixture: nameko's pytest plugin tells consumers made during
            # a test to stop consuming when the test ends, after which a graceful stop would wait forever
            restarted.stop()
        assert len(counts) == 20 and all(n == 1 for _, n in counts)
