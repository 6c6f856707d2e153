"""nameko DependencyProviders of the transitions service: the clock, its config, consent."""
from __future__ import annotations

import eventlet
import structlog
from nameko.exceptions import MethodNotFound, RpcTimeout, UnknownService
from nameko.extensions import DependencyProvider
from nameko.timer import Timer

from pont_shared.contract.rpc import ReplyUnreadable
from pont_shared.contract.rpc.consent import DecideReply, DecideRequest, ShareReply, ShareRequest
from pont_shared.contract.rpc.referrals import OpenReferral

from .config import TransitionsConfig

log = structlog.get_logger(__name__)

BATCH = 500          # requests per batch RPC to consent
CONCURRENT = 16      # in-flight single RPCs when consent has no batch method


class Config(DependencyProvider):
    """The service's own settings, read once at setup."""

    def setup(self):
        self.config = TransitionsConfig.from_config(self.container.config)

    def get_dependency(self, worker_ctx):
        return self.config


class ConfiguredTimer(Timer):
    """A timer whose interval comes from the service's settings, not the class body."""

    def setup(self):
        self.interval = TransitionsConfig.from_config(self.container.config).overdue_check_seconds
        super().setup()


configured_timer = ConfiguredTimer.decorator


class ConsentSharing:
    """The consent service, asked many questions at once (`pont_shared.contract.rpc.consent`).

    Uses consent's batch RPCs (`decide_many` / `share_many`: a list of requests in, a list
    of results in the same order out) and, where consent does not offer them, falls back
    to its single `decide` / `share` with a bounded number of calls in flight.
    """

    def __init__(self, proxy):
        self.proxy = proxy

    def decide_many(self, requests: list[DecideRequest]) -> list[DecideReply]:
        return [DecideReply.read(result) for result in self._many("decide", requests)]

    def share_many(self, requests: list[ShareRequest]) -> list[ShareReply]:
        return [ShareReply.read(result) for result in self._many("share", requests)]

    def _many(self, method: str, requests: list[DecideRequest]) -> list:
        results: list = []
        for start in range(0, len(requests), BATCH):
            chunk = [request.wire() for request in requests[start:start + BATCH]]
            try:
                results.extend(getattr(self.proxy, f"{method}_many")(chunk))
            except MethodNotFound:
                results.extend(self._one_by_one(method, chunk))
        return results

    def _one_by_one(self, method: str, requests: list[dict]) -> list:
        results = []
        call = getattr(self.proxy, method)
        for start in range(0, len(requests), CONCURRENT):
            pending = [call.call_async(request) for request in requests[start:start + CONCURRENT]]
            results.extend(reply.result() for reply in pending)
        return results


class OpenInvolvement:
    """The referrals service's open referrals of the caller's school, where that service answers.

    Absent (`UnknownService`), too old to know the method, or silent for `timeout` seconds:
    no involvement is known from it, and the request's own sections stand.
    """

    def __init__(self, proxy, timeout: float):
        self.proxy, self.timeout = proxy, timeout

    def __call__(self, child_refs: list[str], caller: dict) -> dict[str, list[dict]]:
        try:
            with eventlet.Timeout(self.timeout, RpcTimeout("referrals.open_involvement")):
                answer = self.proxy.open_involvement.call_async(child_refs, caller).result() or {}
            found = OpenReferral.read_by_child(answer)
        except (UnknownService, MethodNotFound, RpcTimeout, ReplyUnreadable) as exc:
            log.info("transitions.referrals_unavailable", reason=type(exc).__name__)
            return {}
        return {ref: [referral.wire() for referral in referrals] for ref, referrals in found.items()}
