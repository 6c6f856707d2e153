"""nameko DependencyProviders of the consent service."""
from __future__ import annotations

import contextlib

from nameko.exceptions import RpcTimeout, UnknownService
from nameko.extensions import DependencyProvider

from pont_shared.config import safe_name
from pont_shared.contract.rpc import ReplyUnreadable
from pont_shared.contract.rpc.agency_link import AnchorView
from pont_shared.mail import smtp_poster
from pont_shared.messaging.rpc import RpcProxy

from .domain import Anchor


class PontSettings(DependencyProvider):
    """The service's `pont_shared.config.Settings`, read once."""

    def get_dependency(self, worker_ctx):
        return self.container.config["PONT_SETTINGS"]


class AgencyAnchors(RpcProxy):
    """`self.anchors()`: the latest ledger head each agency link of `PONT_AGENCIES` kept.

    Asked of all of them at once, each within `PONT_LEDGER_ANCHOR_RPC_TIMEOUT_SECONDS` (default 5);
    one not running here (or not answering) is skipped: the answer says how many anchors were checked.
    """

    def __init__(self):
        super().__init__(timeout_key="PONT_LEDGER_ANCHOR_RPC_TIMEOUT_SECONDS", default_timeout=5.0)

    def get_dependency(self, worker_ctx):
        agencies = self.container.config["PONT_SETTINGS"].agencies
        ledger = f"/pont/{self.container.service_name}"  # the source of its LedgerAnchored events

        def collect() -> list[Anchor]:
            asked = []
            for org in agencies:
                with contextlib.suppress(UnknownService):
                    asked.append((org, self.proxy(worker_ctx, f"agency_link_{safe_name(org)}")
                                  .ledger_anchor.call_async(ledger)))
            anchors = []
            for org, reply in asked:
                try:
                    held = reply.result()
                    anchor = AnchorView.read(held) if held else None
                except (UnknownService, RpcTimeout, ReplyUnreadable):
                    continue
                if anchor:
                    anchors.append(Anchor(anchor.seq, anchor.hash, org))
            return anchors

        return collect


class Mailer(DependencyProvider):
    """`self.mailer`: `post(recipient, subject, body)` through `PONT_SMTP_URL` (`pont_shared.mail`); None
    when no server is configured (notices then wait, queued)."""

    def setup(self):
        settings = self.container.config["PONT_SETTINGS"]
        self.post = smtp_poster(settings.smtp_url, settings.notices_from)

    def get_dependency(self, worker_ctx):
        return self.post
