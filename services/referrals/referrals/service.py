"""The referrals service: entrypoints only."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from nameko.dependency_providers import Config

from pont_shared.contract.errors import Conflict, Forbidden, Invalid, NotFound
from pont_shared.contract.events import AgencyDecided, ConsentGranted
from pont_shared.contract.rpc.referrals import InvolvementQuery, RaiseReferral
from pont_shared.messaging.consumer import handles
from pont_shared.messaging.dependencies import Clock, Setting, UnitOfWorkProvider, every
from pont_shared.messaging.rpc import RpcProxy, rpc
from pont_shared.operations.migrations import migrator
from pont_shared.operations.ops import OpsEndpoints

from . import handlers
from .orm import metadata, tables

MIGRATIONS = Path(__file__).parent / "migrations"
EXPECTED = (NotFound, Conflict, Forbidden, Invalid)
# a referral raised this long ago and still undecided is no longer being decided by its raiser
UNDECIDED_AFTER_KEY, UNDECIDED_AFTER_SECONDS = "PONT_REFERRALS_UNDECIDED_AFTER_SECONDS", 60.0


class ReferralsService(OpsEndpoints):
    """Raises referrals, sends them when sharing is allowed, follows them to an outcome."""

    name = "referrals"
    uow = UnitOfWorkProvider(metadata, tables, prepare=migrator(MIGRATIONS))
    consent = RpcProxy("consent")
    clock = Clock()
    child_ref_secret = Setting("child_ref_secret")
    holidays = Setting("school_holidays")
    config = Config()

    @rpc(expected_exceptions=EXPECTED, caller="request.caller")
    def raise_referral(self, request: dict) -> dict:
        command = RaiseReferral.parse(request)
        return handlers.raise_referral(self.uow, command, consent=self.consent, clock=self.clock,
                                       child_ref_secret=self.child_ref_secret, holidays=self.holidays).wire()

    @rpc(expected_exceptions=EXPECTED)
    def get(self, referral_id: str, caller: dict) -> dict:
        return handlers.get_referral(self.uow, referral_id, caller)

    @rpc(expected_exceptions=EXPECTED)
    def list_referrals(self, caller: dict, status: str | None = None, child_ref: str | None = None) -> list:
        return handlers.list_referrals(self.uow, caller, status, child_ref)

    @rpc(expected_exceptions=EXPECTED)
    def find_children(self, caller: dict, child_ref: str | None = None, name: str | None = None) -> list:
        return handlers.find_children(self.uow, caller, child_ref, name)

    @rpc(expected_exceptions=EXPECTED, vouched_by=("transitions",))  # a transition lead's, checked there
    def open_involvement(self, child_refs: list, caller: dict) -> dict:
        """{child_ref: [OpenReferral]} for the caller's school's open referrals."""
        found = handlers.open_involvement(self.uow, InvolvementQuery.parse({"child_refs": child_refs}), caller)
        return {ref: [referral.wire() for referral in referrals] for ref, referrals in found.items()}

    @rpc(expected_exceptions=EXPECTED)
    def withdraw(self, referral_id: str, caller: dict) -> dict:
        return handlers.withdraw_referral(self.uow, referral_id, caller, clock=self.clock)

    @handles(ConsentGranted)
    def on_consent_granted(self, event):
        handlers.on_consent_granted(self.uow, event.payload(ConsentGranted), consent=self.consent, clock=self.clock,
                                    holidays=self.holidays)

    @handles(AgencyDecided)
    def on_agency_decided(self, event):
        handlers.on_agency_decided(self.uow, event.payload(AgencyDecided), at=event.time)

    @every(interval=30, config_key="PONT_REFERRALS_UNDECIDED_SECONDS")
    def decide_undecided(self):
        """Referrals left undecided by a crash or a consent outage while they were raised."""
        older_than = timedelta(seconds=float(self.config.get(UNDECIDED_AFTER_KEY, UNDECIDED_AFTER_SECONDS)))
        handlers.decide_undecided(self.uow, consent=self.consent, clock=self.clock, older_than=older_than,
                                  holidays=self.holidays)

    @every(interval=60, config_key="PONT_REFERRALS_OVERDUE_SECONDS")
    def check_overdue(self):
        handlers.mark_overdue(self.uow, clock=self.clock)
