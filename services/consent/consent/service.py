"""The consent service: entrypoints only; the rules live in domain.py, the work in handlers.py (and
family.py: what families see and do, and what they are told)."""
from __future__ import annotations

from pathlib import Path

from pont_shared.contract.errors import Conflict, Forbidden, Invalid, NotFound
from pont_shared.contract.events import AppointmentBooked, ReferralHeld, SessionScheduled, TransitionSent
from pont_shared.contract.rpc.consent import MAX_BATCH, DecideRequest, NewAgreement, RecordConsent, ShareRequest
from pont_shared.contract.rpc.family import (
    ExemptionReview,
    FamilyWithdrawal,
    GiveConsent,
    NewExemption,
    Preferences,
    RecordConsentRequest,
    RecordInvite,
    Redeem,
)
from pont_shared.messaging.consumer import handles
from pont_shared.messaging.dependencies import Clock, UnitOfWorkProvider, every
from pont_shared.messaging.rpc import rpc
from pont_shared.operations.migrations import migrator
from pont_shared.operations.ops import OpsEndpoints

from . import family, handlers
from .dependencies import AgencyAnchors, Mailer, PontSettings
from .domain import LedgerKeys
from .orm import metadata, tables

EXPECTED = (NotFound, Conflict, Forbidden, Invalid)
TRANSITIONS_BATCH = 200  # transition.sent events handled in one transaction


class ConsentService(OpsEndpoints):
    """Consents, information-sharing agreements, sharing decisions and the disclosure ledger."""

    name = "consent"

    uow = UnitOfWorkProvider(metadata, tables, prepare=migrator(Path(__file__).parent / "migrations"))
    clock = Clock()
    settings = PontSettings()
    anchors = AgencyAnchors()
    mailer = Mailer()

    @property
    def _ledger_key(self) -> LedgerKeys:
        return LedgerKeys.from_secrets(self.settings.ledger_key, self.settings.ledger_previous_keys)

    @rpc(expected_exceptions=EXPECTED)
    def create_agreement(self, agreement: dict, caller: dict) -> dict:
        return handlers.create_agreement(self.uow, NewAgreement.parse(agreement), caller, self.clock()).wire()

    @rpc(expected_exceptions=EXPECTED)
    def approve_agreement(self, agreement_id: str, caller: dict) -> dict:
        return handlers.approve_agreement(self.uow, agreement_id, caller, self.clock()).wire()

    @rpc(expected_exceptions=EXPECTED)
    def revoke_agreement(self, agreement_id: str, reason: str, caller: dict) -> dict:
        return handlers.revoke_agreement(self.uow, agreement_id, reason, caller, self.clock()).wire()

    @rpc(expected_exceptions=EXPECTED)
    def list_agreements(self, caller: dict) -> list[dict]:
        return [view.wire() for view in handlers.list_agreements(self.uow, caller, self.clock())]

    @rpc(expected_exceptions=EXPECTED)
    def record_consent(self, consent: dict, caller: dict, idempotency_key: str | None = None) -> dict:
        return handlers.record_consent(self.uow, RecordConsent.parse(consent), caller, idempotency_key, self.clock(),
                                       self.settings.child_ref_secret).wire()

    @rpc(expected_exceptions=EXPECTED)
    def withdraw_consent(self, consent_id: str, reason: str, caller: dict, erase: bool = False) -> dict:
        return handlers.withdraw_consent(self.uow, consent_id, reason, caller, self.clock(), self._ledger_key,
                                         erase=bool(erase)).wire()

    @rpc(expected_exceptions=EXPECTED)
    def list_consents(self, child_ref: str, caller: dict) -> list[dict]:
        return handlers.list_consents(self.uow, child_ref, caller, self.clock())

    @rpc(expected_exceptions=EXPECTED)
    def disclosures(self, child_ref: str, caller: dict) -> list[dict]:
        return handlers.disclosures(self.uow, child_ref, caller)

    @rpc(expected_exceptions=EXPECTED, caller="request.caller")
    def decide(self, request: dict) -> dict:
        return handlers.decide(self.uow, DecideRequest.parse(request), self.clock()).wire()

    @rpc(expected_exceptions=EXPECTED, caller="request.caller", vouched_by=("referrals",))
    def share(self, request: dict) -> dict:
        return handlers.share(self.uow, ShareRequest.parse(request), self.clock(), self._ledger_key).wire()

    @rpc(expected_exceptions=EXPECTED, caller="requests[].caller", vouched_by=("transitions",))
    def decide_many(self, requests: list) -> list[dict]:
        commands = DecideRequest.parse_many(requests, MAX_BATCH)
        return [reply.wire() for reply in handlers.decide_many(self.uow, commands, self.clock())]

    @rpc(expected_exceptions=EXPECTED, caller="requests[].caller", vouched_by=("transitions",))
    def share_many(self, requests: list) -> list[dict]:
        commands = ShareRequest.parse_many(requests, MAX_BATCH)
        return [reply.wire() for reply in handlers.share_many(self.uow, commands, self.clock(), self._ledger_key)]

    @rpc(expected_exceptions=EXPECTED)
    def invite_family(self, invite: dict, caller: dict) -> dict:
        return family.invite(self.uow, RecordInvite.parse(invite), caller, self.clock(),
                             self.settings.child_ref_secret).wire()

    @rpc(expected_exceptions=EXPECTED)
    def redeem_family_invite(self, redeem: dict, caller: dict) -> dict:
        return family.redeem(self.uow, Redeem.parse(redeem), caller, self.clock()).wire()

    @rpc(expected_exceptions=EXPECTED)
    def family_children(self, caller: dict) -> list[dict]:
        return [child.wire() for child in family.children(self.uow, caller)]

    @rpc(expected_exceptions=EXPECTED)
    def family_consents(self, child_ref: str, caller: dict) -> list[dict]:
        return family.child_consents(self.uow, child_ref, caller, self.clock())

    @rpc(expected_exceptions=EXPECTED)
    def family_withdraw_consent(self, consent_id: str, withdrawal: dict, caller: dict) -> dict:
        return family.withdraw_consent(self.uow, consent_id, FamilyWithdrawal.parse(withdrawal).reason, caller,
                                       self.clock(), self._ledger_key).wire()

    @rpc(expected_exceptions=EXPECTED)
    def family_shared(self, child_ref: str, caller: dict) -> list[dict]:
        return [entry.wire() for entry in family.shared(self.uow, child_ref, caller)]

    @rpc(expected_exceptions=EXPECTED)
    def exempt_from_family(self, disclosure_id: str, exemption: dict, caller: dict) -> dict:
        return family.exempt(self.uow, disclosure_id, NewExemption.parse(exemption), caller, self.clock(),
                             self._ledger_key).wire()

    @rpc(expected_exceptions=EXPECTED)
    def family_exemptions(self, caller: dict) -> list[dict]:
        return [view.wire() for view in family.exemptions(self.uow, caller, self.clock())]

    @rpc(expected_exceptions=EXPECTED)
    def review_family_exemption(self, exemption_id: str, review: dict, caller: dict) -> dict | None:
        kept = family.review_exemption(self.uow, exemption_id, ExemptionReview.parse(review), caller, self.clock(),
                                       self._ledger_key)
        return kept.wire() if kept else None

    @rpc(expected_exceptions=EXPECTED)
    def family_preferences(self, caller: dict) -> dict:
        return family.preferences(self.uow, caller).wire()

    @rpc(expected_exceptions=EXPECTED)
    def set_family_preferences(self, preferences: dict, caller: dict) -> dict:
        return family.set_preferences(self.uow, Preferences.parse(preferences), caller, self.clock()).wire()

    @handles(SessionScheduled)
    def on_session_scheduled(self, event):
        family.on_session_scheduled(self.uow, event.payload(SessionScheduled))

    @handles(AppointmentBooked)
    def on_appointment_booked(self, event):
        family.on_appointment_booked(self.uow, event.payload(AppointmentBooked), self.clock())

    @rpc(expected_exceptions=EXPECTED)
    def request_consent(self, request: dict, caller: dict) -> dict:
        return family.request_consent(self.uow, RecordConsentRequest.parse(request), caller, self.clock(),
                                      self.settings.child_ref_secret).wire()

    @rpc(expected_exceptions=EXPECTED)
    def family_consent_requests(self, child_ref: str, caller: dict) -> list[dict]:
        return [request.wire() for request in family.open_requests(self.uow, child_ref, caller, self.clock())]

    @rpc(expected_exceptions=EXPECTED)
    def family_give_consent(self, request_id: str, given: dict, caller: dict) -> dict:
        return family.give(self.uow, request_id, GiveConsent.parse(given), caller, self.clock()).wire()

    @rpc(expected_exceptions=EXPECTED)
    def family_decline_request(self, request_id: str, caller: dict) -> dict:
        return family.decline(self.uow, request_id, caller, self.clock()).wire()

    @handles(ReferralHeld)
    def on_referral_held(self, event):
        family.on_referral_held(self.uow, event.payload(ReferralHeld), self.clock())

    @handles(TransitionSent, batch_size=TRANSITIONS_BATCH)  # a whole year group is sent at once
    def on_transition_sent(self, events):
        family.on_transitions_sent(self.uow, events, self.clock())

    @every(interval=3600, config_key="PONT_CONSENTS_ENDING_SECONDS")
    def tell_of_consents_ending(self) -> int:
        return family.tell_of_consents_ending(self.uow, self.clock())

    @every(interval=5, config_key="PONT_NOTICES_SECONDS")
    def send_notices(self) -> int:
        return family.send_notices(self.uow, self.mailer, self.clock()) if self.mailer else 0

    @every(interval=60, config_key="CONSENT_EXPIRY_INTERVAL")
    def expire_consents(self) -> int:
        return handlers.expire_consents(self.uow, self.clock())

    @every(interval=300, config_key="PONT_LEDGER_ANCHOR_SECONDS")
    def anchor_ledger(self) -> dict | None:
        return handlers.anchor_ledger(self.uow, self.clock())

    @every(interval=3600, config_key="PONT_LEDGER_VERIFY_SECONDS", eager=True)
    def verify_ledger_on_schedule(self) -> dict:
        return handlers.verify_ledger(self.uow, self._ledger_key, self.anchors())

    @rpc(expected_exceptions=EXPECTED)
    def verify_ledger(self) -> dict:
        return handlers.verify_ledger(self.uow, self._ledger_key, self.anchors())
