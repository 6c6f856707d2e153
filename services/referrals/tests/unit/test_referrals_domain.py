"""The referral status machine, its chronology, deadlines and data minimisation: plain Python."""
from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from referrals import domain
from referrals.domain import Referral, ReferralRuleBroken, add_working_days, check_basis, response_deadline

MONDAY = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
FRIDAY = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)


def a_referral(**overrides) -> Referral:
    values = dict(
        id="r1", child_ref="c_1", from_org="school:1", to_org="health:1", service="school_nursing",
        urgency="urgent", reason="low mood", details="withdrawn in class", share=["contact", "health_wellbeing"],
        child={"upn": "A661000000001", "given_name": "Ffion", "family_name": "Jones", "date_of_birth": "2015-04-12"},
        information={"health_wellbeing": "poor sleep", "family_context": "separation"},
        basis="consent", justification=None, raised_by="t1", raised_at=MONDAY)
    values.update(overrides)
    return Referral(**values)


def sent(referral: Referral) -> Referral:
    referral.send(MONDAY, "t1", disclosure_id="d1", categories=["contact"])
    return referral


class TestDeadlines:
    def test_safeguarding_is_due_the_next_school_day(self):
        assert response_deadline(MONDAY, "safeguarding") == datetime(2026, 11, 24, 10, 0, tzinfo=UTC)

    def test_a_friday_referral_skips_the_weekend(self):
        assert response_deadline(FRIDAY, "safeguarding").date() == date(2026, 11, 30)
        assert response_deadline(FRIDAY, "urgent").date() == date(2026, 12, 1)

    def test_routine_is_ten_school_days(self):
        assert response_deadline(MONDAY, "routine").date() == date(2026, 12, 7)

    def test_days_are_counted_in_wales_not_in_utc(self):
        late_friday_utc = datetime(2026, 6, 5, 23, 30, tzinfo=UTC)  # 00:30 on Saturday 6 June in Cardiff

        deadline = response_deadline(late_friday_utc, "safeguarding")

        assert deadline == datetime(2026, 6, 7, 23, 30, tzinfo=UTC)  # 00:30 on Monday, the next school day

    def test_holidays_are_not_school_days(self):
        assert add_working_days(MONDAY, 1, frozenset({date(2026, 11, 24)})).date() == date(2026, 11, 25)


class TestStatusMachine:
    def test_sending_sets_the_deadline_and_records_the_step(self):
        referral = sent(a_referral())

        assert referral.status == domain.SENT
        assert referral.deadline == response_deadline(MONDAY, "urgent")
        assert [s.as_dict() for s in referral.history] == [{"status": "sent", "at": MONDAY, "by": "t1"}]

    def test_a_held_referral_then_sent_has_both_steps_in_order(self):
        referral = a_referral()

        referral.hold(MONDAY, "t1")
        referral.send(FRIDAY, "t1", disclosure_id="d1", categories=["contact"])

        assert [s.status for s in referral.history] == ["awaiting_consent", "sent"]

    def test_accept_then_close_and_decline_with_a_code(self):
        referral = sent(a_referral())

        referral.record_agency_step(domain.ACCEPTED, FRIDAY, "n1")
        referral.record_agency_step(domain.CLOSED, FRIDAY, "n1", "support_completed")

        assert [s.status for s in referral.history] == ["sent", "accepted", "closed"]
        assert referral.history[-1].code == "support_completed"
        assert not referral.is_open

    def test_closing_before_accepting_is_refused(self):
        referral = sent(a_referral())

        with pytest.raises(ReferralRuleBroken):
            referral.record_agency_step(domain.CLOSED, FRIDAY, "n1")

    def test_a_withdrawn_referral_cannot_be_withdrawn_again(self):
        referral = sent(a_referral())
        referral.withdraw(FRIDAY, "t1")

        with pytest.raises(ReferralRuleBroken):
            referral.withdraw(FRIDAY, "t1")


class TestOverdue:
    def test_a_sent_referral_past_its_deadline_is_overdue_once(self):
        referral = sent(a_referral(urgency="safeguarding"))
        later = datetime(2026, 11, 25, tzinfo=UTC)

        assert referral.is_overdue(later)
        referral.mark_overdue(later)
        assert not referral.is_overdue(later)

    def test_an_accepted_referral_is_never_overdue(self):
        referral = sent(a_referral(urgency="safeguarding"))
        referral.record_agency_step(domain.ACCEPTED, MONDAY, "n1")

        assert not referral.is_overdue(datetime(2027, 1, 1, tzinfo=UTC))


class TestDisclosureContent:
    def test_only_allowed_categories_are_in_the_content(self):
        content = a_referral().disclosure_content(["health_wellbeing"])

        assert content["categories"] == {"health_wellbeing": "poor sleep"}
        assert "Ffion" not in str(content) and "separation" not in str(content)
        assert content["referral"]["reason"] == "low mood"

    def test_the_childs_identity_travels_under_contact(self):
        content = a_referral().disclosure_content(["contact"])

        assert content["categories"]["contact"]["given_name"] == "Ffion"


class TestBasis:
    def test_safeguarding_needs_the_dsl_role(self):
        with pytest.raises(PermissionError):
            check_basis("safeguarding", "at risk", {"school_staff"})

    def test_safeguarding_needs_a_justification(self):
        with pytest.raises(ReferralRuleBroken) as refused:
            check_basis("safeguarding", "  ", {"dsl"})
        assert refused.value.field == "justification"

    def test_consent_needs_neither(self):
        check_basis("consent", None, {"school_staff"})
