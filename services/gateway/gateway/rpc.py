"""The gateway's RPC to Pont services: `pont_shared.messaging.rpc.RpcProxy`, bounded by the gateway's deadline.

Every call raises `RpcTimeout` (504 problem details) after `PONT_GATEWAY_RPC_TIMEOUT_SECONDS`
(default 30). The request stays queued: a service that comes back still carries it out, so
clients retry with their `Idempotency-Key`. Requests are transient: a broker restart drops them.
"""
from __future__ import annotations

from nameko.exceptions import UnknownService

from pont_shared.config import safe_name
from pont_shared.contract.errors import Forbidden
from pont_shared.messaging.rpc import RpcProxy

TIMEOUT_KEY = "PONT_GATEWAY_RPC_TIMEOUT_SECONDS"
DEFAULT_TIMEOUT_SECONDS = 30.0


def agency_link_name(org: str) -> str:
    """The nameko service name of an organisation's agency_link instance."""
    return f"agency_link_{safe_name(org)}"


class ServiceRpc(RpcProxy):
    """`self.x.method(...)` calls service `target`; `name_key` in the config may name another instance (tests)."""

    def __init__(self, target: str, *, name_key: str | None = None):
        super().__init__(target, timeout_key=TIMEOUT_KEY, default_timeout=DEFAULT_TIMEOUT_SECONDS, name_key=name_key)


class AgencyLinks(RpcProxy):
    """`self.agencies(org).method(...)` calls that organisation's own agency_link.

    An organisation whose agency_link has never run here is not connected to this Pont: its
    callers get 403 saying so, not a 503 that invites them to try again.
    """

    def __init__(self):
        super().__init__(timeout_key=TIMEOUT_KEY, default_timeout=DEFAULT_TIMEOUT_SECONDS)

    def get_dependency(self, worker_ctx):
        return lambda org: _AgencyLink(self.proxy(worker_ctx, agency_link_name(org)), org)


class _AgencyLink:
    def __init__(self, proxy, org: str):
        self._proxy, self._org = proxy, org

    def __getattr__(self, method: str):
        def call(*args, **kwargs):
            try:
                return getattr(self._proxy, method)(*args, **kwargs)
            except UnknownService:
                raise Forbidden(f"{self._org} has no agency link in this Pont") from None
        return call
