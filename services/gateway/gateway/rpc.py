"""The gateway's RPC to Pont services, every call bounded by a deadline.

nameko 2.14 waits for an RPC reply for ever. A service that is stopped while its durable
`rpc-<service>` queue remains (or one that hangs) would hold the HTTP request and a gateway
worker until the client gave up. Here every call raises `RpcTimeout` (504 problem details)
after `PONT_GATEWAY_RPC_TIMEOUT_SECONDS` (default 30). The request stays queued: a service
that comes back still carries it out, so clients retry with their `Idempotency-Key`. Requests
are transient (`pont_shared.rpc`): a broker restart drops them.
"""
from __future__ import annotations

import eventlet
from nameko.exceptions import RpcTimeout
from nameko.extensions import DependencyProvider
from nameko.rpc import MethodProxy, ReplyListener, ServiceProxy

from pont_shared.config import safe_name
from pont_shared.rpc import TRANSIENT

TIMEOUT_KEY = "PONT_GATEWAY_RPC_TIMEOUT_SECONDS"
DEFAULT_TIMEOUT_SECONDS = 30.0


def agency_link_name(org: str) -> str:
    """The nameko service name of an organisation's agency_link instance."""
    return f"agency_link_{safe_name(org)}"


class _TimedMethodProxy(MethodProxy):
    def __init__(self, *args, timeout: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.timeout = timeout

    def __call__(self, *args, **kwargs):
        reply = self._call(*args, **kwargs)
        with eventlet.Timeout(self.timeout, RpcTimeout(f"{self.service_name}.{self.method_name}")):
            return reply.result()


class _TimedServiceProxy(ServiceProxy):
    def __init__(self, worker_ctx, service_name, reply_listener, timeout: float):
        super().__init__(worker_ctx, service_name, reply_listener)
        self.timeout = timeout

    def __getattr__(self, name):
        return _TimedMethodProxy(self.worker_ctx, self.service_name, name, self.reply_listener,
                                 timeout=self.timeout, **TRANSIENT)


class _Rpc(DependencyProvider):
    reply_listener = ReplyListener()

    def setup(self):
        self.timeout = float(self.container.config.get(TIMEOUT_KEY, DEFAULT_TIMEOUT_SECONDS))

    def proxy(self, worker_ctx, service_name: str) -> ServiceProxy:
        return _TimedServiceProxy(worker_ctx, service_name, self.reply_listener, self.timeout)


class ServiceRpc(_Rpc):
    """`self.x.method(...)` calls service `target`; `name_key` in the config may name another instance (tests)."""

    def __init__(self, target: str, *, name_key: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.target = target
        self.name_key = name_key

    def setup(self):
        super().setup()
        if self.name_key:
            self.target = self.container.config.get(self.name_key, self.target)

    def get_dependency(self, worker_ctx) -> ServiceProxy:
        return self.proxy(worker_ctx, self.target)


class AgencyLinks(_Rpc):
    """`self.agencies(org).method(...)` calls that organisation's own agency_link."""

    def get_dependency(self, worker_ctx):
        return lambda org: self.proxy(worker_ctx, agency_link_name(org))
