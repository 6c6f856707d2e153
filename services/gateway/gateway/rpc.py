"""The gateway's RPC to Pont services: `pont_shared.messaging.rpc.RpcProxy`, bounded by the gateway's deadline.

Every call raises `RpcTimeout` (504 problem details) after `PONT_GATEWAY_RPC_TIMEOUT_SECONDS`
(default 30). The request stays queued: a service that comes back still carries it out, so
clients retry with their `Idempotency-Key`. Requests are transient: a broker restart drops them.
"""
from __future__ import annotations

from pont_shared.config import safe_name
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
    """`self.agencies(org).method(...)` calls that organisation's own agency_link."""

    def __init__(self):
        super().__init__(timeout_key=TIMEOUT_KEY, default_timeout=DEFAULT_TIMEOUT_SECONDS)

    def get_dependency(self, worker_ctx):
        return lambda org: self.proxy(worker_ctx, agency_link_name(org))
