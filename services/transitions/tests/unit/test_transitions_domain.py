"""Transition rules: which section travels on which basis, and a record's life."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from transitions import domain
from transitions.domain import SectionOutcome, Transition, WrongState

NOW = datetime(2026, 7, 10, 9, 0, tzinfo=UTC)
SECTIONS = {
    "identifiers": {"upn": "A661000000001"}, "attendance": {"year": 2025}, "aln": {"decision_outcome": "no_aln"},
    "wellbeing": {"notes": "x"}, "agency_involvement": [], "child_protection": {"status": "open"},
}


def allow(category, basis="consent", ref="c1"):
    return {"category": category, "allowed": True, "basis": basis, "basis_ref": ref, "reason": "ok"}


def deny(category):
    return {"category": category, "allowed": False, "basis": None, "basis_ref": None, "reason": "no consent"}


def record(**changes) -> Transition:
    base = Transition(id="t1", child_ref="c_1", from_school="school:6612001", to_school="school:6614002",
                      prepared_by="lead", prepared_at=NOW, sections=SECTIONS)
    return base if not changes else Transition(**{**base.__dict__, **changes})


class TestQuestionFor:
    def test_asks_each_supplied_consent_section_under_its_category(self):
        question = domain.question_for({"identifiers": {}, "aln": {}, "wellbeing": {}}, frozenset({"transition_lead"}))

        assert question.categories == ("education", "aln", "health_wellbeing")
        assert not question.ask_child_protection

    def test_child_protection_is_asked_only_for_a_dsl_who_is_transition_lead(self):
        lead_only = domain.question_for(SECTIONS, frozenset({"transition_lead"}))
        dsl_lead = domain.question_for(SECTIONS, frozenset({"transition_lead", "dsl"}))

        assert lead_only.cp_withheld is not None and not lead_only.ask_child_protection
        assert dsl_lead.ask_child_protection and dsl_lead.cp_withheld is None


class TestOutcome:
    def test_sections_without_a_basis_are_withheld_with_the_reason(self):
        question = domain.question_for(SECTIONS, frozenset({"transition_lead"}))
        main = [allow("education"), allow("attendance"), deny("aln"), deny("health_wellbeing"),
                deny("family_context")]

        outcome = domain.outcome_of(SECTIONS, question, main, None)

        assert outcome.included == ("identifiers", "attendance")
        assert [w.section for w in outcome.withheld] == ["aln", "wellbeing", "agency_involvement", "child_protection"]
        assert outcome.withheld[0].reason == "no consent"

    def test_child_protection_travels_only_on_legal_obligation(self):
        question = domain.question_for(SECTIONS, frozenset({"transition_lead", "dsl"}))
        main = [allow("education")]

        on_legal = domain.outcome_of(SECTIONS, question, main, [allow("safeguarding", "legal_obligation", "lo:1")])
        on_consent = domain.outcome_of(SECTIONS, question, main, [allow("safeguarding", "consent")])

        assert "child_protection" in on_legal.included and on_legal.cp_decision["basis"] == "legal_obligation"
        assert "child_protection" not in on_consent.included

    def test_child_protection_goes_in_its_own_dsl_only_delivery(self):
        question = domain.question_for(SECTIONS, frozenset({"transition_lead", "dsl"}))
        outcome = domain.outcome_of(SECTIONS, question, [allow("education")],
                                    [allow("safeguarding", "legal_obligation")])

        main, cp = domain.delivery_content(record(), outcome)

        assert set(main["sections"]) == {"identifiers"}
        assert set(cp["sections"]) == {"child_protection"} and cp["restricted_to_role"] == "dsl"


class TestLifecycle:
    def test_sent_record_goes_overdue_only_after_its_period(self):
        sent = record().send(SectionOutcome(("identifiers",), ()), NOW, timedelta(days=10), ("d1",))

        assert not sent.is_overdue(NOW + timedelta(days=9))
        assert sent.go_overdue(NOW + timedelta(days=10)).status == domain.OVERDUE

    def test_acknowledging_twice_changes_nothing(self):
        sent = record().send(SectionOutcome(("identifiers",), ()), NOW, timedelta(days=10), ())
        once = sent.acknowledge(NOW + timedelta(days=1), "sec-lead")

        assert once.acknowledge(NOW + timedelta(days=2), "other") is once
        assert once.acknowledged_by == "sec-lead"

    def test_a_prepared_record_cannot_be_acknowledged_nor_sent_twice(self):
        sent = record().send(SectionOutcome(("identifiers",), ()), NOW, timedelta(days=10), ())

        with pytest.raises(WrongState):
            record().acknowledge(NOW, "x")
        with pytest.raises(WrongState):
            sent.send(SectionOutcome((), ()), NOW, timedelta(days=1), ())

    def test_receiving_school_sees_a_record_only_once_sent(self):
        sent = record().send(SectionOutcome(("identifiers",), ()), NOW, timedelta(days=10), ())

        assert not record().visible_to("school:6614002")
        assert sent.visible_to("school:6614002") and not sent.visible_to("school:6699999")

    def test_ctf_file_name_is_source_ctf_destination_sequence(self):
        assert domain.ctf_file_name("school:6612001", "school:6614002", 7) == "6612001_CTF_6614002_007.xml"
        with pytest.raises(ValueError):
            domain.ctf_file_name("health:cardiff", "school:6614002", 1)


class TestRequestSend:
    def record(self) -> Transition:
        return Transition(id="t1", child_ref="c_1", from_school="school:6612001", to_school="school:6614002",
                          prepared_by="lead", prepared_at=NOW, sections={"identifiers": {"upn": "A1"}})

    def test_a_requested_send_stays_prepared_and_unseen_by_the_receiving_school(self):
        requested = self.record().request_send(NOW, {"sub": "lead", "org": "school:6612001", "roles": []})

        assert requested.awaiting_send and requested.status == "prepared"
        assert not requested.visible_to("school:6614002")

    def test_sending_completes_the_request(self):
        requested = self.record().request_send(NOW, {"sub": "lead", "org": "school:6612001", "roles": []})

        sent = requested.send(SectionOutcome(("identifiers",), ()), NOW, timedelta(days=7), ("d1",))

        assert not sent.awaiting_send and sent.send_requested_by is None and sent.visible_to("school:6614002")
