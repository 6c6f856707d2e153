"""Referrals' DependencyProviders."""
from __future__ import annotations

from nameko.extensions import DependencyProvider


class ChildRefSecret(DependencyProvider):
    """The platform key that turns a UPN into a child_ref, from the settings read once."""

    def setup(self):
        self.secret = self.container.config["PONT_SETTINGS"].child_ref_secret

    def get_dependency(self, worker_ctx) -> str:
        return self.secret


class SchoolHolidays(DependencyProvider):
    """The days that are not school days besides weekends (`PONT_SCHOOL_HOLIDAYS`), for deadlines."""

    def setup(self):
        self.holidays = self.container.config["PONT_SETTINGS"].school_holidays

    def get_dependency(self, worker_ctx) -> frozenset:
        return self.holidays
