"""Settings read from the environment: defaults, and values that are refused with the fix."""
from __future__ import annotations

from datetime import date

import pytest

from pont_shared.config import Settings, parse_school_holidays


class TestSchoolHolidays:
    def test_ranges_include_both_ends_and_single_days_count(self):
        days = parse_school_holidays("2026-12-21..2026-12-23, 2027-02-15")

        assert days == {date(2026, 12, 21), date(2026, 12, 22), date(2026, 12, 23), date(2027, 2, 15)}

    def test_none_by_default(self):
        assert Settings.from_env("referrals", {}).school_holidays == frozenset()

    def test_read_from_the_environment(self):
        settings = Settings.from_env("referrals", {"PONT_SCHOOL_HOLIDAYS": "2026-10-26..2026-10-30"})

        assert len(settings.school_holidays) == 5

    @pytest.mark.parametrize("raw", ["2026-13-01", "half-term", "2026-10-30..2026-10-26"])
    def test_a_value_that_is_not_dates_names_the_variable(self, raw):
        with pytest.raises(ValueError, match="PONT_SCHOOL_HOLIDAYS"):
            parse_school_holidays(raw)
