"""The "Sharing" part of the public API, through the real gateway and consent service containers."""
from __future__ import annotations

import dataclasses
import uuid
from datetime import date, timedelta

import pytest
import requests
from nameko.containers import ServiceContainer
from nameko.rpc import RpcProxy

from consent.service import ConsentService
from gateway.service import GatewayService
from pont_shared.config import Settings
from pont_shared.identity import CHECK_LETTERS, make_upn
from pont_shared.testing import AMQP_URI, bearer, fresh_database, http_url, random_name, web_address
from pont_shared.testing.fixtures import delete_queues

pytestmark = pytest.mark.integration

SCHOOL, OTHER_SCHOOL, HEALTH = "school:6612001", "school:6614002", "health:cardiff-vale"
STAFF = bearer("staff1", SCHOOL, ["school_staff"])
DSL = bearer("dsl1", SCHOOL, ["dsl"])
ADMIN = bearer("admin1", "local_authority:cardiff", ["admin"])
NURSE = bearer("nurse1", HEALTH, ["school_nurse"])
OTHER_STAFF = bearer("staff9", OTHER_SCHOOL, ["school_staff"])
OTHER_DSL = bearer("dsl9", OTHER_SCHOOL, ["dsl"])
YOUTH = bearer("yw1", "youth_work:cardiff", ["youth_worker"])


def _start(cls, name: str, database_url: str) -> ServiceContainer:
    settings = dataclasses.replace(
        Settings.from_env(name, {"AMQP_URI": AMQP_URI, "PONT_LOG_LEVEL": "WARNING",
                                 "PONT_OUTBOX_POLL_SECONDS": "0.2"}, http_port=0),
        database_url=database_url)
    config = {**settings.nameko_config(), "WEB_SERVER_ADDRESS": web_address()}
    container = ServiceContainer(type(cls.__name__, (cls,), {"name": name}), config)
    container.start()
    return container


@pytest.fixture(scope="module")
def api():
    """One consent service and one gateway for the module; the gateway's consent proxy aims at this consent."""
    consent_name = random_name("consent")
    with fresh_database("pont_sharing_api") as url:
        consent = _start(ConsentService, consent_name, url)
        gateway_cls = type("GatewayService", (GatewayService,), {"consent_rpc": RpcProxy(consent_name)})
        gateway = _start(gateway_cls, random_name("gateway"), "sqlite://")
        try:
            yield http_url(gateway)
        finally:
            for container in (gateway, consent):
                container.stop()
            delete_queues(consent)


def upn() -> str:
    return make_upn(uuid.uuid4().int % 10**9)


def consent_body(child_upn: str | None = None, **overrides) -> dict:
    body = {
        "child": {"upn": child_upn or upn(), "given_name": "Ffion", "family_name": "Jones",
                  "date_of_birth": "2015-04-12"},
        "given_by": {"name": "Rhian Jones", "relationship": "parent"},
        "recipients": [HEALTH], "purposes": ["referral"], "categories": ["contact", "health_wellbeing"],
        "evidence": "written",
    }
    body.update(overrides)
    return body


def post(api, path, body, headers, **extra_headers):
    return requests.post(api + path, json=body, headers={**headers, **extra_headers}, timeout=10)


def get(api, path, headers):
    return requests.get(api + path, headers=headers, timeout=10)


@pytest.fixture(scope="module")
def agreement(api):
    today = date.today()
    response = post(api, "/api/v1/agreements", {
        "parties": [SCHOOL, HEALTH], "purposes": ["referral"], "categories": ["contact", "health_wellbeing"],
        "valid_from": (today - timedelta(days=1)).isoformat(), "valid_to": (today + timedelta(days=365)).isoformat(),
    }, ADMIN)
    assert response.status_code == 201, response.text
    agreement_id = response.json()["id"]
    for party in (SCHOOL, HEALTH):
        approved = post(api, f"/api/v1/agreements/{agreement_id}/approve", None, bearer("admin", party, ["admin"]))
        assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "active"
    return agreement_id


class TestTheSharingJourney:
    def test_consent_decision_withdrawal_and_the_ledger(self, api, agreement):
        given = post(api, "/api/v1/consents", consent_body(), STAFF)
        assert given.status_code == 201, given.text
        ref = given.json()["child_ref"]
        question = {"child_ref": ref, "to_org": HEALTH, "purpose": "referral",
                    "categories": ["contact", "safeguarding"]}

        before = post(api, "/api/v1/sharing-decisions", question, STAFF)
        withdrawn = post(api, f"/api/v1/consents/{given.json()['id']}/withdraw", {"reason": "parent asked"}, STAFF)
        after = post(api, "/api/v1/sharing-decisions", question, STAFF)
        listed = get(api, f"/api/v1/children/{ref}/consents", NURSE)
        ledger = get(api, f"/api/v1/children/{ref}/disclosures", DSL)

        assert before.status_code == 200
        assert {d["category"]: (d["allowed"], d["basis"]) for d in before.json()["decisions"]} == {
            "contact": (True, "consent"), "safeguarding": (False, None)}
        assert withdrawn.status_code == 200 and withdrawn.json() == {"id": given.json()["id"], "status": "withdrawn"}
        assert [d["allowed"] for d in after.json()["decisions"]] == [False, False]
        assert listed.status_code == 200 and listed.json()[0]["status"] == "withdrawn"
        assert ledger.status_code == 200 and [e["kind"] for e in ledger.json()] == ["withdrawal"]

    def test_a_dsl_may_ask_on_a_safeguarding_basis_with_a_justification(self, api, agreement):
        ref = post(api, "/api/v1/consents", consent_body(), STAFF).json()["child_ref"]

        response = post(api, "/api/v1/sharing-decisions", {
            "child_ref": ref, "to_org": HEALTH, "purpose": "referral", "categories": ["contact"],
            "basis": "safeguarding", "justification": "at risk"}, DSL)

        assert response.status_code == 200
        assert response.json()["flagged_for_review"] is True
        assert response.json()["decisions"][0]["basis"] == "safeguarding"


class TestLedgerVerification:
    def test_a_real_ledger_is_intact_through_the_gateway_for_an_admin_and_a_dsl(self, api, agreement):
        given = post(api, "/api/v1/consents", consent_body(), STAFF)
        question = {"child_ref": given.json()["child_ref"], "to_org": HEALTH, "purpose": "referral",
                    "categories": ["contact"]}
        assert post(api, "/api/v1/sharing-decisions", question, STAFF).status_code == 200
        post(api, f"/api/v1/consents/{given.json()['id']}/withdraw", {"reason": "parent asked"}, STAFF)

        for headers in (ADMIN, DSL):
            response = get(api, "/api/v1/ledger/verify", headers)
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["intact"] is True and "first_broken" not in body
            assert body["entries"] >= 1 and body["head"]["seq"] == body["entries"]
            assert len(body["head"]["hash"]) == 64


class TestAgreements:
    """An agreement is proposed, in force once an admin of every party approved it, and revocable at once."""

    def test_proposed_approved_by_every_party_then_revoked_and_sharing_follows_each_step(self, api):
        partner = f"social_care:a{uuid.uuid4().hex[:8]}"
        partner_admin, school_admin = bearer("admin7", partner, ["admin"]), bearer("admin8", SCHOOL, ["admin"])
        today = date.today()
        ref = post(api, "/api/v1/consents", consent_body(recipients=[partner]), STAFF).json()["child_ref"]
        question = {"child_ref": ref, "to_org": partner, "purpose": "referral", "categories": ["contact"]}

        def allowed() -> bool:
            return post(api, "/api/v1/sharing-decisions", question, STAFF).json()["decisions"][0]["allowed"]

        proposed = post(api, "/api/v1/agreements", {
            "parties": [SCHOOL, partner], "purposes": ["referral"], "categories": ["contact"],
            "valid_from": str(today), "valid_to": str(today + timedelta(days=30))}, ADMIN)
        assert proposed.status_code == 201, proposed.text
        agreement_id = proposed.json()["id"]
        assert proposed.json()["status"] == "proposed" and proposed.json()["awaiting"] == sorted([SCHOOL, partner])
        assert not allowed()

        by_school = post(api, f"/api/v1/agreements/{agreement_id}/approve", None, school_admin)
        assert by_school.json()["status"] == "proposed" and by_school.json()["awaiting"] == [partner]
        assert not allowed()
        by_partner = post(api, f"/api/v1/agreements/{agreement_id}/approve", None, partner_admin)
        assert by_partner.status_code == 200 and by_partner.json()["status"] == "active"
        assert allowed()

        listed = get(api, "/api/v1/agreements", partner_admin)
        assert [a["id"] for a in listed.json()] == [agreement_id]
        revoked = post(api, f"/api/v1/agreements/{agreement_id}/revoke", {"reason": "protocol ended"}, partner_admin)
        assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
        assert not allowed()
        again = post(api, f"/api/v1/agreements/{agreement_id}/revoke", {"reason": "twice"}, school_admin)
        assert again.status_code == 409
        assert post(api, f"/api/v1/agreements/{agreement_id}/approve", None, school_admin).status_code == 409

    def test_an_admin_outside_the_parties_cannot_see_approve_or_revoke_it(self, api, agreement):
        outsider = bearer("admin9", f"youth_work:z{uuid.uuid4().hex[:8]}", ["admin"])
        assert post(api, f"/api/v1/agreements/{agreement}/approve", None, outsider).status_code == 404
        assert post(api, f"/api/v1/agreements/{agreement}/revoke", {"reason": "x"}, outsider).status_code == 404
        assert agreement not in [a["id"] for a in get(api, "/api/v1/agreements", outsider).json()]

    def test_the_proposer_outside_the_parties_may_not_approve_for_them(self, api, agreement):
        assert post(api, f"/api/v1/agreements/{agreement}/approve", None, ADMIN).status_code == 403


class TestAuthentication:
    @pytest.mark.parametrize("method,path", [
        ("POST", "/api/v1/agreements"), ("POST", "/api/v1/consents"), ("POST", "/api/v1/consents/x/withdraw"),
        ("GET", "/api/v1/children/c_1/consents"), ("GET", "/api/v1/children/c_1/disclosures"),
        ("POST", "/api/v1/sharing-decisions"), ("GET", "/api/v1/ledger/verify"),
    ])
    def test_no_token_is_401(self, api, method, path):
        response = requests.request(method, api + path, json={}, timeout=10)

        assert response.status_code == 401
        assert response.headers["Content-Type"] == "application/problem+json"


class TestAuthorisation:
    @pytest.mark.parametrize("method,path,headers", [
        ("POST", "/api/v1/agreements", STAFF),
        ("POST", "/api/v1/consents", YOUTH),
        ("POST", "/api/v1/consents/x/withdraw", YOUTH),
        ("GET", "/api/v1/children/c_1/consents", YOUTH),
        ("GET", "/api/v1/children/c_1/disclosures", STAFF),
        ("POST", "/api/v1/sharing-decisions", ADMIN),
        ("GET", "/api/v1/ledger/verify", STAFF),
        ("GET", "/api/v1/ledger/verify", NURSE),
    ])
    def test_a_role_not_allowed_is_403(self, api, method, path, headers):
        response = requests.request(method, api + path, json={}, headers=headers, timeout=10)

        assert response.status_code == 403

    def test_a_statutory_basis_asked_by_a_non_dsl_is_403(self, api, agreement):
        response = post(api, "/api/v1/sharing-decisions", {
            "child_ref": "c_" + "0" * 32, "to_org": HEALTH, "purpose": "referral", "categories": ["contact"],
            "basis": "safeguarding", "justification": "at risk"}, STAFF)

        assert response.status_code == 403


class TestAnotherOrganisationsChild:
    def test_is_404(self, api):
        given = post(api, "/api/v1/consents", consent_body(), STAFF).json()

        consents = get(api, f"/api/v1/children/{given['child_ref']}/consents", OTHER_STAFF)
        ledger = get(api, f"/api/v1/children/{given['child_ref']}/disclosures", OTHER_DSL)
        withdraw = post(api, f"/api/v1/consents/{given['id']}/withdraw", {"reason": "x"}, OTHER_STAFF)

        assert (consents.status_code, ledger.status_code, withdraw.status_code) == (404, 404, 404)


def _bad_check_letter(valid: str) -> str:
    return next(letter for letter in CHECK_LETTERS if letter != valid[0]) + valid[1:]


class TestValidation:
    @pytest.mark.parametrize("body,field_name", [
        (consent_body(_bad_check_letter(make_upn(42))), "child.upn"),
        (consent_body(categories=["contact", "shoe_size"]), "categories.1"),
        (consent_body(expires_on="2020-01-01"), "expires_on"),
        (consent_body(given_by={"name": "Ffion", "relationship": "self"}), "competence_assessed"),
        (consent_body(recipients=["the council"]), "recipients.0"),
        (consent_body(evidence="rumour"), "evidence"),
    ], ids=["bad UPN check letter", "unknown category", "expiry in the past", "under 16 without competence",
            "bad organisation id", "unknown evidence"])
    def test_bad_consent_is_422_naming_the_field(self, api, body, field_name):
        response = post(api, "/api/v1/consents", body, STAFF)

        assert response.status_code == 422
        assert response.headers["Content-Type"] == "application/problem+json"
        assert field_name in [e["field"] for e in response.json()["errors"]]

    def test_a_safeguarding_question_without_justification_is_422(self, api):
        response = post(api, "/api/v1/sharing-decisions", {
            "child_ref": "c_" + "0" * 32, "to_org": HEALTH, "purpose": "referral", "categories": ["contact"],
            "basis": "safeguarding"}, DSL)

        assert response.status_code == 422
        assert [e["field"] for e in response.json()["errors"]] == ["justification"]

    @pytest.mark.parametrize("body", ["not json", "[]", '{"reason": 5}'])
    def test_nonsense_is_never_a_500(self, api, body):
        response = requests.post(api + "/api/v1/consents/x/withdraw", data=body,
                                 headers={**STAFF, "Content-Type": "application/json"}, timeout=10)

        assert response.status_code in (400, 404, 422)


class TestIdempotency:
    def test_the_same_key_and_body_return_the_first_result_without_a_second_record(self, api):
        body = consent_body()
        key = uuid.uuid4().hex

        first = post(api, "/api/v1/consents", body, STAFF, **{"Idempotency-Key": key})
        second = post(api, "/api/v1/consents", body, STAFF, **{"Idempotency-Key": key})
        listed = get(api, f"/api/v1/children/{first.json()['child_ref']}/consents", STAFF)

        assert (first.status_code, second.status_code) == (201, 201)
        assert first.json() == second.json()
        assert len(listed.json()) == 1

    def test_the_same_key_with_another_body_is_409(self, api):
        key = uuid.uuid4().hex
        post(api, "/api/v1/consents", consent_body(), STAFF, **{"Idempotency-Key": key})

        again = post(api, "/api/v1/consents", consent_body(), STAFF, **{"Idempotency-Key": key})

        assert again.status_code == 409
