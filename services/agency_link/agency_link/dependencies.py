"""agency_link's DependencyProviders."""
from __future__ import annotations

from nameko.extensions import DependencyProvider


class OrgName(DependencyProvider):
    """The organisation this instance serves (`--org`, i.e. `container.config["org"]`)."""

    def setup(self):
        self.org = self.container.config["org"]

    def get_dependency(self, worker_ctx) -> str:
        return self.org
