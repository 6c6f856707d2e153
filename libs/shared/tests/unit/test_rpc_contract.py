"""The RPC contract (pont_shared.contract.rpc): a bad request is refused naming the field; replies read back."""
from datetime import UTC, date, datetime

import pytest
from nameko.exceptions import RemoteError

from pont_shared.contract.caller import CallerClaims, CallerRefused
from pont_shared.contract.errors import Invalid
from pont_shared.contract.rpc import ReplyUnreadable
from pont_shared.contract.rpc.consent import (
    AgreementView,
    DecideReply,
    DecideRequest,
    NewConsent,
    RecordConsent,
    ShareReply,
    ShareRequest,
)
from pont_shared.contract.rpc.referrals import InvolvementQuery, OpenReferral, RaisedReferral, RaiseReferral
from pont_shared.identity import make_upn

STAFF = {"sub": "t1", "org": "school:6612001", "roles": ["school_staff"]}
CHILD = {"upn": make_upn(1), "given_name": "Ffion", "family_name": "Jones", "date_of_birth": "2015-04-12"}


def share_request(**overrides) -> dict:
    return {"child_ref": "c_0123", "from_org": "school:6612001", "to_org": "health:cardiff-vale",
            "purpose": "referral", "categories": ["contact"], "caller": STAFF, "subject_kind": "referral",
            "subject_id": "r-1", **overrides}


def referral(**overrides) -> dict:
    return {"child": CHILD, "to_org": "health:cardiff-vale", "service": "school_nursing", "reason": "low mood",
            "details": "withdrawn", "urgency": "urgent", "share": ["contact"], "caller": "signed.assertion",
            **overrides}


def fields(refused: pytest.ExceptionInfo) -> list[str]:
    return [error["field"] for error in refused.value.errors]


class TestRequests:
    def test_a_request_built_by_the_caller_is_parsed_back_by_the_service_unchanged(self):
        sent = ShareRequest(**share_request(caller=CallerClaims(**STAFF)), idempotency_key="referral:r-1")

        received = ShareRequest.parse(sent.wire())

        assert received == sent and received.claims.org == "school:6612001"
        assert received.wire() == {**share_request(), "basis": None, "justification": None,
                                   "idempotency_key": "referral:r-1"}

    def test_a_bad_field_is_named_and_its_value_never_echoed(self):
        with pytest.raises(Invalid) as refused:
            ShareRequest.parse(share_request(purpose="gossip", categories=["contact", "diary-of-Ffion"]))

        assert fields(refused) == ["purpose", "categories.1"]
        assert "gossip" not in str(refused.value.errors) and "Ffion" not in str(refused.value.errors)

    def test_a_missing_and_an_unknown_field_are_named(self):
        request = share_request(subject_kynd="referral")
        del request["subject_kind"]

        with pytest.raises(Invalid) as refused:
            ShareRequest.parse(request)

        assert sorted(fields(refused)) == ["subject_kind", "subject_kynd"]

    def test_a_batch_names_the_item_and_the_field(self):
        with pytest.raises(Invalid) as refused:
            ShareRequest.parse_many([share_request(), share_request(to_org="nowhere")], limit=10)

        assert fields(refused) == ["requests.1.to_org"]

    def test_a_batch_that_is_not_a_list_or_too_long_is_refused(self):
        for batch in ({"not": "a list"}, [share_request()] * 3):
            with pytest.raises(Invalid) as refused:
                ShareRequest.parse_many(batch, limit=2)

            assert fields(refused) == ["requests"]

    def test_a_decision_asks_without_a_subject_and_a_share_needs_one(self):
        question = {k: v for k, v in share_request().items() if k not in ("subject_kind", "subject_id")}

        assert DecideRequest.parse(question).categories == ["contact"]
        with pytest.raises(Invalid) as refused:
            ShareRequest.parse(question)
        assert sorted(fields(refused)) == ["subject_id", "subject_kind"]

    def test_a_caller_the_entrypoint_did_not_verify_is_refused(self):
        unverified = ShareRequest.parse(share_request(caller="an.unverified.assertion"))

        with pytest.raises(CallerRefused):
            unverified.claims  # noqa: B018

    def test_a_caller_that_is_neither_claims_nor_an_assertion_is_named(self):
        with pytest.raises(Invalid) as refused:
            ShareRequest.parse(share_request(caller={"sub": "t1", "roles": ["dsl"]}))

        assert all(field.startswith("caller") for field in fields(refused))

    def test_a_referral_names_the_childs_bad_upn_and_an_unknown_service(self):
        with pytest.raises(Invalid) as refused:
            RaiseReferral.parse(referral(child={**CHILD, "upn": "X1"}, service="astrology"))

        assert fields(refused) == ["child.upn", "service"]

    def test_contact_information_must_be_an_object(self):
        with pytest.raises(Invalid) as refused:
            RaiseReferral.parse(referral(information={"contact": "07700 900000"}))

        assert fields(refused) == ["information"]

    def test_a_consent_names_a_bad_relationship(self):
        with pytest.raises(Invalid) as refused:
            NewConsent.parse({"child": CHILD, "given_by": {"name": "Rhian", "relationship": "neighbour"},
                              "recipients": ["health:cardiff-vale"], "purposes": ["referral"],
                              "categories": ["contact"], "evidence": "written"})

        assert fields(refused) == ["given_by.relationship"]

    def test_the_consent_service_is_sent_the_childs_upn_and_date_of_birth_not_their_names(self):
        given = NewConsent.parse({"child": CHILD, "given_by": {"name": "Rhian", "relationship": "parent"},
                                  "recipients": ["health:cardiff-vale"], "purposes": ["referral"],
                                  "categories": ["contact"], "evidence": "written"})

        sent = given.to_record().wire()

        assert sent["child"] == {"upn": CHILD["upn"], "date_of_birth": "2015-04-12"}
        assert RecordConsent.parse({**sent, "child": CHILD}).child.model_dump() == given.to_record().child.model_dump()


class TestReplies:
    def test_a_reply_reads_back_what_the_service_answered_and_ignores_fields_it_does_not_know(self):
        answered = ShareReply(decisions=[{"category": "contact", "allowed": True, "basis": "consent",
                                          "basis_ref": "consent-1", "reason": "consent"}],
                              flagged_for_review=False, disclosure_id="d-1").wire()

        read = ShareReply.read({**answered, "added_later": 1})

        assert read.disclosure_id == "d-1" and [d.category for d in read.allowed] == ["contact"]
        assert read.wire() == answered
        assert set(DecideReply.read(answered).wire()) == {"decisions", "flagged_for_review"}

    def test_a_reply_with_a_datetime_reads_the_same_from_json_as_from_python(self):
        deadline = datetime(2026, 11, 25, 10, tzinfo=UTC)
        reply = {"id": "r", "child_ref": "c", "status": "sent", "to_org": "health:1", "service": "camhs",
                 "deadline": deadline, "shared_categories": ["contact"]}

        assert RaisedReferral.read(RaisedReferral.read(reply).wire()) == RaisedReferral.read(reply)

    def test_an_agreement_reads_back_with_its_dates_and_revocation_time(self):
        view = AgreementView(id="a", status="revoked", parties=["health:1", "school:1"], purposes=["referral"],
                             categories=["contact"], valid_from=date(2026, 1, 1), valid_to=date(2027, 8, 31),
                             proposed_by_org="school:1", approved_by=["school:1"], awaiting=["health:1"],
                             revoked_at=datetime(2026, 5, 1, 9, tzinfo=UTC))

        read = AgreementView.read(view.wire())

        assert read == view and read.wire()["valid_to"] == "2027-08-31"

    def test_a_reply_that_breaks_the_contract_is_the_services_failure_not_the_clients(self):
        with pytest.raises(ReplyUnreadable) as unreadable:
            ShareReply.read({"decisions": "all of them", "flagged_for_review": False})

        assert isinstance(unreadable.value, RemoteError) and not isinstance(unreadable.value, Invalid)
        assert "decisions" in str(unreadable.value) and "all of them" not in str(unreadable.value)


class TestOpenInvolvement:
    def test_a_bad_child_ref_is_named_by_its_place_in_the_list(self):
        with pytest.raises(Invalid) as refused:
            InvolvementQuery.parse({"child_refs": ["c_1", "c" * 65]})

        assert fields(refused) == ["child_refs.1"]

    def test_the_answer_reads_back_by_child_and_one_that_is_not_keyed_by_child_is_unreadable(self):
        answer = {"c_1": [{"service": "camhs", "to_org": "health:1", "status": "sent", "since": "2026-11-23"}]}

        [referral] = OpenReferral.read_by_child(answer)["c_1"]

        assert referral.since == date(2026, 11, 23) and referral.wire() == answer["c_1"][0]
        with pytest.raises(ReplyUnreadable):
            OpenReferral.read_by_child([answer])
        with pytest.raises(ReplyUnreadable) as unreadable:
            OpenReferral.read_by_child({"c_1": [{"service": "camhs", "to_org": "health:1", "status": "sent"}]})
        assert "since" in str(unreadable.value)
