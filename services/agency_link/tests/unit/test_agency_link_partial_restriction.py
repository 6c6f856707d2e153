"""A copy resting on several consents: withdrawing one withholds exactly the parts that rested on it."""
from __future__ import annotations

from datetime import UTC, datetime

from agency_link.domain import AgencyCopy

AT = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def copy(basis_ref: str = "A", refs: dict | None = None) -> AgencyCopy:
    return AgencyCopy(
        disclosure_id="d1", subject_kind="transition", subject_id="t1", child_ref="c_1", from_org="school:6612001",
        purpose="transition", basis="consent", basis_ref=basis_ref, received_at=AT,
        content={"sections": {"identifiers": {"upn": "A123"}, "aln": {"areas_of_need": ["SLCN"]}},
                 **({"basis_refs": refs} if refs is not None else {})})


def test_only_the_part_resting_on_the_withdrawn_consent_is_withheld():
    held = copy(refs={"identifiers": ["A"], "aln": ["B"]})

    assert held.honour_withdrawal("B", "restrict", AT)

    view = held.view()
    assert not view["restricted"] and view["content"]["sections"] == {"identifiers": {"upn": "A123"}}
    assert view["withheld"] == [{"part": "aln", "reason": "restricted"}]
    assert "basis_refs" not in view["content"] and "withheld_parts" not in view["content"]
    assert held.content["sections"]["aln"]   # restricted: kept, not served


def test_erase_deletes_the_part_and_then_the_other_consent_ends_the_whole_copy():
    held = copy(refs={"identifiers": ["A"], "aln": ["B"]})

    held.honour_withdrawal("B", "erase", AT)
    assert "aln" not in held.content["sections"] and held.view()["withheld"] == [{"part": "aln", "reason": "erased"}]

    held.honour_withdrawal("A", "restrict", AT)
    assert held.view()["restricted"] and held.view()["content"] is None


def test_a_part_disclosed_on_two_consents_is_withheld_when_either_ends():
    held = copy(refs={"identifiers": ["A"], "aln": ["A", "B"]})

    held.honour_withdrawal("B", "restrict", AT)

    assert set(held.view()["content"]["sections"]) == {"identifiers"}


def test_a_joined_basis_ref_of_an_older_copy_still_matches_each_consent():
    held = copy(basis_ref="A,B")

    assert held.honour_withdrawal("B", "restrict", AT)
    assert held.view()["restricted"]
    assert not copy(basis_ref="A,B").honour_withdrawal("C", "restrict", AT)
