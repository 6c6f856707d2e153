"""nameko DependencyProviders of the consent service."""
from __future__ import annotations

from nameko.extensions import DependencyProvider


class PontSettings(DependencyProvider):
    """The service's `pont_shared.config.Settings`, read once."""

    def get_dependency(self, worker_ctx):
        return self.container.config["PONT_SETTINGS"]
