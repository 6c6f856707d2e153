"""A transition record honours the end of a consent its sections rested on."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from transitions.domain import SectionOutcome, Transition, Withheld

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
SECTIONS = {"identifiers": {"upn": "A123"}, "attendance": {"year": 2025}, "aln": {"areas_of_need": ["SLCN"]}}


def sent() -> Transition:
    record = Transition(id="t1", child_ref="c_1", from_school="school:6612001", to_school="school:6614002",
                        prepared_by="lead", prepared_at=NOW, sections=SECTIONS)
    outcome = SectionOutcome(
        included=("identifiers", "attendance", "aln"), withheld=(),
        main_decisions=({"category": "education", "allowed": True, "basis": "consent", "basis_ref": "A"},
                        {"category": "attendance", "allowed": True, "basis": "consent", "basis_ref": "A"},
                        {"category": "aln", "allowed": True, "basis": "consent", "basis_ref": "B"}))
    return record.send(outcome, NOW, timedelta(days=7), ("d1",))


def test_the_sections_on_the_ended_consent_are_withheld_with_the_reason():
    record = sent().consent_ended("B", "withdrawn")

    assert record.included == ("identifiers", "attendance")
    assert record.withheld == (Withheld("aln", "aln", "withdrawn"),)
    assert record.included_content(for_dsl=False) == {k: SECTIONS[k] for k in ("identifiers", "attendance")}


def test_another_consent_changes_nothing():
    record = sent()
    assert record.consent_ended("C", "expired") is record


def test_erase_deletes_the_content_after_a_restrict():
    record = sent().consent_ended("B", "withdrawn").consent_ended("B", "withdrawn", "erase")

    assert "aln" not in record.sections and record.withheld == (Withheld("aln", "aln", "erased"),)
