"""RPC to the one agency_link instance that serves an organisation."""
from __future__ import annotations

from nameko.extensions import DependencyProvider
from nameko.rpc import ReplyListener, ServiceProxy

from pont_shared.config import safe_name


def agency_link_name(org: str) -> str:
    """The nameko service name of an organisation's agency_link instance."""
    return f"agency_link_{safe_name(org)}"


class AgencyLinks(DependencyProvider):
    """`self.agencies(org).method(...)` calls that organisation's own agency_link."""

    reply_listener = ReplyListener()

    def get_dependency(self, worker_ctx):
        def for_org(org: str) -> ServiceProxy:
            return ServiceProxy(worker_ctx, agency_link_name(org), self.reply_listener)

        return for_org
