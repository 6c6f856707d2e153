"""The agency's copy: decisions it may take and what a withdrawal does to it. Plain Python."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agency_link.domain import AgencyCopy, DecisionRefused

AT = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def a_copy(**overrides) -> AgencyCopy:
    values = dict(disclosure_id="d1", subject_kind="referral", subject_id="r1", child_ref="c_1", from_org="school:1",
                  purpose="referral", basis="consent", basis_ref="consent-1",
                  content={"referral": {"reason": "low mood"}, "categories": {"contact": {"given_name": "Ffion"}},
                           "basis_refs": {"contact": "consent-1", "health_wellbeing": "consent-2"}},
                  received_at=AT)
    values.update(overrides)
    return AgencyCopy(**values)


class TestDecide:
    def test_accept_then_close(self):
        copy = a_copy()

        copy.decide("accepted", AT, "n1")
        copy.decide("closed", AT, "n1", reason_code="support_completed", note="six sessions")

        assert copy.status == "closed" and [h["status"] for h in copy.history] == ["accepted", "closed"]

    def test_a_declined_referral_cannot_be_accepted(self):
        copy = a_copy()
        copy.decide("declined", AT, "n1", reason_code="other")

        with pytest.raises(DecisionRefused):
            copy.decide("accepted", AT, "n1")

    def test_a_referral_cannot_be_acknowledged(self):
        with pytest.raises(DecisionRefused):
            a_copy().decide("acknowledged", AT, "n1")


class TestWithdrawal:
    def test_a_copy_rests_on_every_consent_it_was_disclosed_under(self):
        assert a_copy().rests_on("consent-2") and not a_copy().rests_on("consent-3")

    def test_restrict_keeps_the_fact_but_serves_no_content(self):
        copy = a_copy()

        copy.restrict(AT, "restrict")

        view = copy.view()
        assert view["restricted"] and view["content"] is None
        assert (view["id"], view["child_ref"]) == ("r1", "c_1")

    def test_erase_removes_the_content_from_the_store(self):
        copy = a_copy()

        copy.restrict(AT, "erase")

        assert copy.content is None

    def test_an_unrestricted_copy_serves_its_content_without_basis_bookkeeping(self):
        view = a_copy().view()

        assert view["content"]["categories"]["contact"]["given_name"] == "Ffion"
        assert "basis_refs" not in view["content"]


class TestRoleRestrictedContent:
    def test_a_child_protection_file_is_served_to_the_dsl_only(self):
        copy = a_copy(subject_kind="transition", content={"restricted_to_role": "dsl",
                                                          "child_protection": {"summary": "open plan"}})

        staff_view = copy.view(frozenset({"transition_lead"}))
        dsl_view = copy.view(frozenset({"transition_lead", "dsl"}))

        assert staff_view["content"] is None and staff_view["restricted_to_role"] == "dsl"
        assert dsl_view["content"]["child_protection"] == {"summary": "open plan"}
