"""Settings read from the environment: defaults, and values that are refused with the fix."""
from __future__ import annotations

from datetime import date

import pytest

from pont_shared.config import Settings, UnsafeConfiguration, parse_school_holidays
from pont_shared.contract.caller import new_signing_key, public_key_of


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


class TestSecretsOutsideDevelopment:
    SIGNING_KEY = new_signing_key()
    STRONG = {"PONT_JWT_SECRET": "j" * 32, "PONT_CHILD_REF_SECRET": "c" * 40, "PONT_LEDGER_KEY": "l" * 32,
              "PONT_CALLER_VERIFY_KEY": public_key_of(SIGNING_KEY)}

    def test_development_accepts_the_development_secrets(self):
        Settings.from_env("referrals", {"PONT_ENV": "development"}).check_secrets()

    def test_production_is_the_default_and_refuses_a_default_secret_naming_it(self):
        with pytest.raises(UnsafeConfiguration, match="PONT_JWT_SECRET is the development default"):
            Settings.from_env("referrals", {}).check_secrets()

    @pytest.mark.parametrize("variable", ["PONT_JWT_SECRET", "PONT_CHILD_REF_SECRET", "PONT_LEDGER_KEY"])
    def test_production_refuses_each_short_secret_without_printing_it(self, variable):
        env = {**self.STRONG, "PONT_ENV": "production", variable: "short-but-secret-value"}
        with pytest.raises(UnsafeConfiguration) as refused:
            Settings.from_env("referrals", env).check_secrets()
        assert variable in str(refused.value) and "32 bytes" in str(refused.value)
        assert "short-but-secret-value" not in str(refused.value)

    @pytest.mark.parametrize("variable", ["PONT_JWT_SECRET", "PONT_CHILD_REF_SECRET", "PONT_LEDGER_KEY"])
    def test_production_refuses_each_development_default(self, variable):
        env = {k: v for k, v in self.STRONG.items() if k != variable} | {"PONT_ENV": "production"}
        with pytest.raises(UnsafeConfiguration, match=f"{variable} is the development default"):
            Settings.from_env("referrals", env).check_secrets()

    def test_production_accepts_secrets_of_its_own(self):
        Settings.from_env("referrals", {**self.STRONG, "PONT_ENV": "production"}).check_secrets()

    def test_only_the_gateway_holds_the_caller_signing_key_and_it_may_not_be_the_development_one(self):
        production = {**self.STRONG, "PONT_ENV": "production"}
        Settings.from_env("agency_link_health_1", production).check_secrets()
        with pytest.raises(UnsafeConfiguration, match="PONT_CALLER_SIGNING_KEY is the development default"):
            Settings.from_env("gateway", production).check_secrets()
        Settings.from_env("gateway", {**production, "PONT_CALLER_SIGNING_KEY": self.SIGNING_KEY}).check_secrets()

    def test_production_refuses_the_development_caller_verify_key(self):
        env = {k: v for k, v in self.STRONG.items() if k != "PONT_CALLER_VERIFY_KEY"} | {"PONT_ENV": "production"}
        with pytest.raises(UnsafeConfiguration, match="PONT_CALLER_VERIFY_KEY is the development default"):
            Settings.from_env("consent", env).check_secrets()

    def test_an_unknown_environment_is_refused(self):
        with pytest.raises(UnsafeConfiguration, match="PONT_ENV must be one of"):
            Settings.from_env("referrals", {**self.STRONG, "PONT_ENV": "staging"}).check_secrets()
