"""The Common Transfer File: what is written validates, and reads back to the same pupils."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pont_shared.identity import make_upn
from transitions import ctf

NOW = datetime(2026, 7, 10, 9, 0, tzinfo=UTC)


def pupil(n: int, **sections) -> dict:
    return {"identifiers": {"upn": make_upn(n), "given_name": f"Given{n}", "family_name": f"Family{n}",
                            "date_of_birth": "2014-05-03", "gender": "F"}, **sections}


FULL = pupil(
    1,
    attendance={"year": 2025, "sessions_possible": 380, "sessions_authorised": 12, "sessions_unauthorised": 3},
    aln={"decision_outcome": "has_aln", "idp": {"maintained_by": "local_authority"},
         "areas_of_need": ["SLCN", "ASD"], "review_date": "2026-03-01"},
)


class TestExport:
    def test_a_cohort_round_trips_through_the_ctf(self):
        pupils = [FULL, pupil(2), pupil(3, aln={"decision_outcome": "no_aln", "areas_of_need": []})]

        document = ctf.export("school:6612001", "school:6614002", pupils, NOW)
        imported = ctf.import_(document)

        assert imported == {"from_school": "school:6612001", "to_school": "school:6614002", "pupils": pupils}

    def test_only_the_sections_given_are_written(self):
        document = ctf.export("school:6612001", "school:6614002", [pupil(4)], NOW)

        assert b"<Attendance>" not in document and b"WelshDetails" not in document
        assert b"<UPN>" in document

    def test_a_document_breaking_the_schema_is_refused(self):
        document = ctf.export("school:6612001", "school:6614002", [FULL], NOW)
        broken = document.replace(b"<UPN>", b"<UPN>X").replace(b"</DOB>", b"</DOB><Shoe>9</Shoe>")

        with pytest.raises(ctf.CtfInvalid):
            ctf.import_(broken)

    def test_malformed_xml_is_refused_not_crashed_on(self):
        with pytest.raises(ctf.CtfInvalid):
            ctf.import_(b"<CTfile><Header>")
