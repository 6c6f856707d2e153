"""Families through the gateway, on the stack of test_referrals_flow (consent, referrals, the
nurse's and the social worker's agency links, real RabbitMQ and PostgreSQL).

A school invites a parent with a one-time code; the parent, signed in with role `family`,
redeems it, sees the consent staff recorded, withdraws it, and the nurse's copy of the referral
made on it is restricted. The parent's history of what was shared shows the disclosure and the
withdrawal, but not a disclosure a DSL kept from the family. A young person who decides for
themselves owns their own consents; a code works once, at its own school.
"""
from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest
from sqlalchemy import create_engine, text

from pont_shared.contract.envelope import EVENTS_EXCHANGE
from pont_shared.identity import make_upn
from pont_shared.messaging.wire import WireObserver
from pont_shared.testing import bearer, wait_until

from .test_referrals_flow import (  # noqa: F401 (pont: the stack, a fixture)
    HEALTH,
    OTHER_SCHOOL,
    SCHOOL,
    give_consent,
    inbox_item,
    pont,
    referral_body,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def child():
    serial = uuid.uuid4().int % 10**9
    return {"upn": make_upn(serial), "given_name": f"Elis{serial}", "family_name": "Price",
            "date_of_birth": "2014-05-06"}


def family(org: str = SCHOOL) -> dict:
    return bearer(f"family-{uuid.uuid4().hex[:8]}", org, ["family"])


def invite(pont, child: dict, relationship: str = "parent", **extra) -> dict:
    response = pont.post("/api/v1/family/invites", pont.staff, {"child": child, "relationship": relationship,
                                                                **extra})
    assert response.status_code == 201, response.text
    return response.json()


def linked(pont, child: dict, relationship: str = "parent") -> tuple[dict, str]:
    """A family member linked to the child: (their Authorization header, the child's ref)."""
    member, invited = family(), invite(pont, child, relationship)
    response = pont.post("/api/v1/family/links", member, {"code": invited["code"]})
    assert response.status_code == 201, response.text
    return member, invited["child_ref"]


def a_disclosure(pont, child: dict) -> str:
    """A referral shared on the parent's consent to contact: the id of its disclosure in the ledger."""
    give_consent(pont, child, ["contact"])
    made = pont.post("/api/v1/referrals", pont.staff, referral_body(child, share=["contact"], information={})).json()
    [entry] = [e["id"] for e in pont.get(f"/api/v1/children/{made['child_ref']}/disclosures", pont.dsl).json()
               if e["kind"] == "disclosure"]
    return entry


def withdrawal_evidence(pont, consent_id: str) -> str | None:
    engine = create_engine(pont.urls["consent"])
    try:
        with engine.connect() as db:
            return db.execute(text("SELECT withdrawal_evidence FROM consents WHERE id = :id"),
                              {"id": consent_id}).scalar_one()
    finally:
        engine.dispose()


class TestInvitation:
    def test_a_code_links_one_family_member_once_and_only_at_its_own_school(self, pont, child):
        invited = invite(pont, child)
        assert invited["relationship"] == "parent" and len(invited["code"]) == 19
        elsewhere = pont.post("/api/v1/family/links", family(OTHER_SCHOOL), {"code": invited["code"]})
        member = family()

        # as a parent types it: lower case, spaces around
        redeemed = pont.post("/api/v1/family/links", member, {"code": f"  {invited['code'].lower()} "})
        again = pont.post("/api/v1/family/links", family(), {"code": invited["code"]})

        assert elsewhere.status_code == 404, elsewhere.text
        assert redeemed.status_code == 201, redeemed.text
        assert redeemed.json()["child_ref"] == invited["child_ref"]
        assert redeemed.json()["given_name"] == child["given_name"]
        assert again.status_code == 404
        assert [c["child_ref"] for c in pont.get("/api/v1/family/children", member).json()] == [invited["child_ref"]]

    def test_bad_codes_and_bad_invitations_are_422_naming_the_field(self, pont, child):
        bad_code = pont.post("/api/v1/family/links", family(), {"code": "1234"})
        under_16 = pont.post("/api/v1/family/invites", pont.staff, {"child": child, "relationship": "self"})
        no_child = pont.post("/api/v1/family/invites", pont.staff, {"relationship": "parent"})

        assert bad_code.status_code == 422 and bad_code.json()["errors"][0]["field"] == "code"
        assert under_16.status_code == 422
        assert [e["field"] for e in under_16.json()["errors"]] == ["competence_assessed"]
        assert no_child.status_code == 422 and [e["field"] for e in no_child.json()["errors"]] == ["child"]

    def test_only_school_staff_invite_and_only_a_family_redeems(self, pont, child):
        assert pont.post("/api/v1/family/invites", pont.nurse,
                         {"child": child, "relationship": "parent"}).status_code == 403
        assert pont.post("/api/v1/family/links", pont.staff, {"code": "ABCD-EFGH-JKLM-NPQR"}).status_code == 403
        assert pont.post("/api/v1/family/invites", family(),
                         {"child": child, "relationship": "parent"}).status_code == 403


class TestAParentWithdrawsConsent:
    def test_the_nurses_copy_is_restricted_and_the_history_shows_what_the_dsl_did_not_exempt(self, pont, child):
        consent = give_consent(pont, child, ["contact", "health_wellbeing"])
        nursing = pont.post("/api/v1/referrals", pont.staff, referral_body(
            child, share=["contact", "health_wellbeing"], information={})).json()
        camhs = pont.post("/api/v1/referrals", pont.staff, referral_body(
            child, service="camhs", share=["contact"], information={})).json()
        assert wait_until(lambda: inbox_item(pont, nursing["id"]), timeout=5)["content"]
        ledger = pont.get(f"/api/v1/children/{consent['child_ref']}/disclosures", pont.dsl).json()
        disclosed = {e["subject_id"]: e["id"] for e in ledger if e["kind"] == "disclosure"}
        # the DSL keeps the CAMHS disclosure from the family, with a reason and a review date
        exempted = pont.post(f"/api/v1/disclosures/{disclosed[camhs['id']]}/family-exemption", pont.dsl,
                             {"reason": "Telling the family now could put the child at risk",
                              "review_on": str(date.today() + timedelta(days=90))})
        assert exempted.status_code == 201, exempted.text
        parent, child_ref = linked(pont, child)
        assert child_ref == consent["child_ref"]

        seen = pont.get(f"/api/v1/family/children/{child_ref}/consents", parent)
        assert seen.status_code == 200, seen.text
        assert [(c["id"], c["status"], c["recipients"]) for c in seen.json()] == [(consent["id"], "active", [HEALTH])]

        withdrawn = pont.post(f"/api/v1/family/consents/{consent['id']}/withdraw", parent,
                              {"reason": "We would rather talk to the nurse ourselves"})

        assert withdrawn.status_code == 200, withdrawn.text
        assert withdrawn.json() == {"id": consent["id"], "status": "withdrawn"}
        copy = wait_until(lambda: (i := inbox_item(pont, nursing["id"])) and i["restricted"] and i, timeout=5)
        assert copy["content"] is None
        assert withdrawal_evidence(pont, consent["id"]) == "portal"
        assert pont.get(f"/api/v1/family/children/{child_ref}/consents", parent).json()[0]["status"] == "withdrawn"
        history = pont.get(f"/api/v1/family/children/{child_ref}/shared", parent)
        assert history.status_code == 200, history.text
        shown = history.json()
        assert [(e["kind"], e["to_org"]) for e in shown] == [("disclosure", HEALTH), ("withdrawal", None)]
        assert shown[0]["id"] == disclosed[nursing["id"]] and shown[0]["categories"] == ["contact", "health_wellbeing"]
        assert disclosed[camhs["id"]] not in {e["id"] for e in shown}
        # the marking is itself in the ledger, for the DSL to see and review
        marks = [e for e in pont.get(f"/api/v1/children/{child_ref}/disclosures", pont.dsl).json()
                 if e["kind"] == "family_exemption"]
        assert [(m["basis_ref"], m["basis"], m["flagged_for_review"]) for m in marks] == [
            (disclosed[camhs["id"]], "safeguarding", True)]

    def test_an_exemption_needs_a_dsl_of_a_party_a_reason_and_a_review_date_within_a_year(self, pont, child):
        entry = a_disclosure(pont, child)
        path = f"/api/v1/disclosures/{entry}/family-exemption"
        soon = str(date.today() + timedelta(days=30))

        assert pont.post(path, pont.staff, {"reason": "r", "review_on": soon}).status_code == 403
        assert pont.post(path, pont.other_school, {"reason": "r", "review_on": soon}).status_code == 404
        late = pont.post(path, pont.dsl, {"reason": "r", "review_on": str(date.today() + timedelta(days=400))})
        past = pont.post(path, pont.dsl, {"reason": "r", "review_on": str(date.today())})
        no_reason = pont.post(path, pont.dsl, {"review_on": soon})
        first = pont.post(path, pont.dsl, {"reason": "risk", "review_on": soon})
        second = pont.post(path, pont.dsl, {"reason": "risk", "review_on": soon})

        for refused in (late, past):
            assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "review_on", refused.text
        assert no_reason.status_code == 422 and no_reason.json()["errors"][0]["field"] == "reason"
        assert first.status_code == 201 and second.status_code == 409


class TestAYoungPersonWhoDecides:
    def test_owns_the_consents_they_gave_and_sees_every_one_about_them(self, pont, child):
        child = {**child, "date_of_birth": str(date.today().replace(year=date.today().year - 17) - timedelta(days=1))}
        by_parent = give_consent(pont, child, ["contact"])
        own = pont.post("/api/v1/consents", pont.staff, {
            "child": child, "given_by": {"name": child["given_name"], "relationship": "self"},
            "recipients": [HEALTH], "purposes": ["referral"], "categories": ["health_wellbeing"],
            "evidence": "written"}).json()
        parent, child_ref = linked(pont, child)
        young_person, same_child = linked(pont, child, "self")

        parents_view = pont.get(f"/api/v1/family/children/{child_ref}/consents", parent).json()
        their_view = pont.get(f"/api/v1/family/children/{child_ref}/consents", young_person).json()
        parent_withdraws_theirs = pont.post(f"/api/v1/family/consents/{own['id']}/withdraw", parent, {})
        they_withdraw_the_parents = pont.post(f"/api/v1/family/consents/{by_parent['id']}/withdraw",
                                              young_person, {})

        assert same_child == child_ref
        assert [c["id"] for c in parents_view] == [by_parent["id"]]
        assert {c["id"] for c in their_view} == {by_parent["id"], own["id"]}
        assert parent_withdraws_theirs.status_code == 404
        assert they_withdraw_the_parents.status_code == 200
        assert pont.get("/api/v1/family/children", young_person).json()[0]["decides_for_self"] is True


def referral_status(pont, referral_id: str) -> str:
    response = pont.get(f"/api/v1/referrals/{referral_id}", pont.staff)
    assert response.status_code == 200, response.text
    return response.json()["status"]


class TestConsentAskedOfTheFamily:
    def test_a_referral_held_for_consent_asks_the_family_and_what_they_give_sends_it(self, pont, child):
        held = pont.post("/api/v1/referrals", pont.staff, referral_body(
            child, share=["contact", "health_wellbeing"], information={})).json()
        assert held["status"] == "awaiting_consent", held
        parent, child_ref = linked(pont, child)

        asked = wait_until(lambda: pont.get(f"/api/v1/family/children/{child_ref}/consent-requests", parent).json(),
                           timeout=10)
        [request] = asked
        assert (request["recipients"], request["purposes"], sorted(request["categories"]), request["referral_id"]) \
            == ([HEALTH], ["referral"], ["contact", "health_wellbeing"], held["id"])

        given = pont.post(f"/api/v1/family/consent-requests/{request['id']}/give", parent, {})
        again = pont.post(f"/api/v1/family/consent-requests/{request['id']}/give", parent, {})

        assert given.status_code == 201, given.text
        assert again.status_code == 409
        wait_until(lambda: referral_status(pont, held["id"]) == "sent", timeout=10,
                   message="the referral goes on once the family consents")
        assert wait_until(lambda: inbox_item(pont, held["id"]), timeout=5)["content"]
        [consent] = pont.get(f"/api/v1/family/children/{child_ref}/consents", parent).json()
        assert (consent["id"], consent["evidence"], consent["given_by"]["relationship"]) == (
            given.json()["id"], "portal", "parent")
        assert pont.get(f"/api/v1/family/children/{child_ref}/consent-requests", parent).json() == []

    def test_a_practitioners_request_declined_is_answered_and_one_staff_then_covered_is_no_longer_asked(
            self, pont, child):
        parent, child_ref = linked(pont, child)
        ask = {"child": child, "recipients": [HEALTH], "purposes": ["appointment"], "categories": ["contact"]}
        first = pont.post("/api/v1/consent-requests", pont.nurse, ask)
        second = pont.post("/api/v1/consent-requests", pont.staff, {**ask, "purposes": ["referral"]})
        assert first.status_code == 201 and second.status_code == 201, first.text + second.text
        assert first.json()["asked_by_org"] == HEALTH

        declined = pont.post(f"/api/v1/family/consent-requests/{first.json()['id']}/decline", parent)
        give_after = pont.post(f"/api/v1/family/consent-requests/{first.json()['id']}/give", parent, {})
        give_consent(pont, child, ["contact"])   # staff record what the second asked for

        assert declined.status_code == 200 and declined.json()["status"] == "declined"
        assert give_after.status_code == 409
        assert pont.get(f"/api/v1/family/children/{child_ref}/consent-requests", parent).json() == []
        stranger = pont.post(f"/api/v1/family/consent-requests/{second.json()['id']}/give", family(), {})
        assert stranger.status_code == 404
        bad = pont.post("/api/v1/consent-requests", pont.staff, {**ask, "categories": ["gossip"]})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "categories.0"


class TestTheDslReviewsAnExemption:
    def test_kept_until_a_new_date_then_lifted_the_family_sees_the_disclosure_again(self, pont, child):
        entry = a_disclosure(pont, child)
        marked = pont.post(f"/api/v1/disclosures/{entry}/family-exemption", pont.dsl,
                           {"reason": "risk", "review_on": str(date.today() + timedelta(days=30))}).json()
        parent, child_ref = linked(pont, child)
        assert pont.get(f"/api/v1/family/children/{child_ref}/shared", parent).json() == []
        listed = [e for e in pont.get("/api/v1/family-exemptions", pont.dsl).json() if e["id"] == marked["id"]]
        assert [(e["disclosure_id"], e["due"]) for e in listed] == [(entry, False)]
        path = f"/api/v1/family-exemptions/{marked['id']}/review"

        no_date = pont.post(path, pont.dsl, {"decision": "keep", "reason": "still at risk"})
        elsewhere = pont.post(path, pont.other_school, {"decision": "lift", "reason": "x"})
        kept = pont.post(path, pont.dsl, {"decision": "keep", "reason": "still at risk",
                                          "review_on": str(date.today() + timedelta(days=60))})
        still_hidden = pont.get(f"/api/v1/family/children/{child_ref}/shared", parent).json()
        lifted = pont.post(path, pont.dsl, {"decision": "lift", "reason": "the enquiry ended"})

        assert no_date.status_code == 422 and no_date.json()["errors"][0]["field"] == "review_on"
        assert elsewhere.status_code == 404
        assert kept.status_code == 200 and kept.json()["review_on"] == str(date.today() + timedelta(days=60))
        assert still_hidden == []
        assert lifted.status_code == 204
        assert [e["id"] for e in pont.get(f"/api/v1/family/children/{child_ref}/shared", parent).json()] == [entry]
        kinds = [e["kind"] for e in pont.get(f"/api/v1/children/{child_ref}/disclosures", pont.dsl).json()]
        assert kinds == ["disclosure", "family_exemption", "exemption_kept", "exemption_lifted"]
        assert pont.post(path, pont.dsl, {"decision": "lift", "reason": "again"}).status_code == 404


class TestOnTheSharedExchange:
    def test_each_family_step_is_an_event_and_none_names_the_child_or_the_family(self, pont, child):
        observer = WireObserver(pont.uri, bindings=[(EVENTS_EXCHANGE, "pont.consent.#")])
        try:
            entry = a_disclosure(pont, child)
            pont.post(f"/api/v1/disclosures/{entry}/family-exemption", pont.dsl,
                      {"reason": "Telling them could put the child at risk",
                       "review_on": str(date.today() + timedelta(days=30))})
            sub = f"family-{uuid.uuid4().hex}"
            member = bearer(sub, SCHOOL, ["family"])
            invited = invite(pont, child)
            assert pont.post("/api/v1/family/links", member, {"code": invited["code"]}).status_code == 201
            asked = pont.post("/api/v1/consent-requests", pont.staff, {
                "child": child, "recipients": [HEALTH], "purposes": ["appointment"], "categories": ["contact"]})
            assert asked.status_code == 201

            seen = observer.wait_for(lambda events: {"pont.consent.family_linked.v1", "pont.consent.requested.v1",
                                                     "pont.consent.family_exemption.v1"} <= {
                e.type for e in events if e.subject == invited["child_ref"]}, timeout=10)
            on_the_wire = b"".join(observer.raw)
        finally:
            observer.close()
        linked_event = next(e for e in seen if e.type == "pont.consent.family_linked.v1")
        assert linked_event.data == {"child_ref": invited["child_ref"], "school": SCHOOL, "relationship": "parent"}
        for personal in (child["upn"], child["given_name"], invited["code"], "could put the child at risk", sub):
            assert personal.encode() not in on_the_wire
