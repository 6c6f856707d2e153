"""The "Sharing" routes of API.md: agreements, consents, the disclosure ledger and sharing decisions."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from pont_shared.contract.rpc.consent import (
    AgreementView,
    ConsentRecorded,
    ConsentStatus,
    ConsentView,
    DecideReply,
    DecideRequest,
    LedgerEntryView,
    LedgerVerification,
    NewAgreement,
    NewConsent,
    SharingQuestion,
)

from ..api import api, assertion, sent
from ..rpc import ServiceRpc
from ..schemas import Text

CONSENT_ROLES = ("school_staff", "dsl", "school_nurse")
STAFF_ROLES = ("school_staff", "dsl", "transition_lead", "school_nurse", "health_practitioner",
               "social_worker", "youth_worker")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Withdrawal(_Body):
    reason: Text
    erase: bool = Field(False, description="ask every holder to delete the details disclosed on this consent "
                                           "(they keep a tombstone: id, child, when, why) instead of restricting them")


class SharingRoutes:
    """Mixed into GatewayService: each route hands a validated request to the consent service."""

    consent_rpc = ServiceRpc("consent", name_key="PONT_CONSENT_SERVICE")

    @api("POST", "/api/v1/agreements", roles=("admin",), body=NewAgreement, status=201,
         summary="Propose an information-sharing agreement; the proposer's organisation, if a party, approves it",
         example={"parties": ["school:6612001", "health:cardiff-vale"], "purposes": ["referral"],
                  "categories": ["contact", "health_wellbeing"], "valid_from": "2026-01-01",
                  "valid_to": "2027-08-31"})
    def create_agreement(self, caller, body):
        return 201, AgreementView.read(self.consent_rpc.create_agreement(body.wire(), assertion(caller))).model_dump()

    @api("GET", "/api/v1/agreements", roles=("admin",),
         summary="The agreements the caller's organisation is a party to or proposed, with their status")
    def list_agreements(self, caller, body):
        views = AgreementView.read_many(self.consent_rpc.list_agreements(assertion(caller)))
        return [view.model_dump() for view in views]

    @api("POST", "/api/v1/agreements/{id}/approve", roles=("admin",),
         summary="Approve an agreement for the caller's organisation, a party; in force once every party has",
         responses={404: "no such agreement the caller's organisation can see", 409: "the agreement was revoked"})
    def approve_agreement(self, caller, body, id):
        return AgreementView.read(self.consent_rpc.approve_agreement(id, assertion(caller))).model_dump()

    @api("POST", "/api/v1/agreements/{id}/revoke", roles=("admin",), body=Withdrawal,
         summary="Revoke an agreement (a party or the proposer): no new sharing rests on it from now on",
         responses={404: "no such agreement the caller's organisation can see", 409: "already revoked"})
    def revoke_agreement(self, caller, body, id):
        return AgreementView.read(self.consent_rpc.revoke_agreement(id, body.reason, assertion(caller))).model_dump()

    @api("POST", "/api/v1/consents", roles=CONSENT_ROLES, body=NewConsent, status=201, idempotent=True,
         summary="Record consent given by a parent, carer or the young person",
         example={"child": {"upn": "A661000000001", "given_name": "Ffion", "family_name": "Jones",
                            "date_of_birth": "2015-04-12"},
                  "given_by": {"name": "Rhian Jones", "relationship": "parent"},
                  "recipients": ["health:cardiff-vale"], "purposes": ["referral"],
                  "categories": ["contact", "health_wellbeing"], "expires_on": "2027-07-31", "evidence": "written"})
    def record_consent(self, caller, body, idempotency_key=None):
        recorded = self.consent_rpc.record_consent(body.to_record().wire(), assertion(caller), idempotency_key)
        return 201, ConsentRecorded.read(recorded).model_dump()

    @api("POST", "/api/v1/consents/{id}/withdraw", roles=CONSENT_ROLES, body=Withdrawal,
         summary="Withdraw a consent: later decisions deny and holders are told to restrict (erase: true → to erase)",
         example={"reason": "parent withdrew consent by phone"}, responses={404: "unknown consent"})
    def withdraw_consent(self, caller, body, id):
        withdrawn = self.consent_rpc.withdraw_consent(id, body.reason, assertion(caller), erase=body.erase)
        return ConsentStatus.read(withdrawn).model_dump()

    @api("GET", "/api/v1/children/{child_ref}/consents", roles=CONSENT_ROLES,
         summary="The consents the caller's organisation holds or is named in for a child",
         responses={404: "no consent record of this child for the caller's organisation"})
    def list_consents(self, caller, body, child_ref):
        return [sent(consent) for consent in ConsentView.read_many(
            self.consent_rpc.list_consents(child_ref, assertion(caller)))]

    @api("GET", "/api/v1/children/{child_ref}/disclosures", roles=("dsl", "admin"),
         summary="What was shared about a child, with whom and why (the disclosure ledger)",
         responses={404: "no record of this child for the caller's organisation"})
    def list_disclosures(self, caller, body, child_ref):
        return [sent(entry) for entry in LedgerEntryView.read_many(
            self.consent_rpc.disclosures(child_ref, assertion(caller)))]

    @api("GET", "/api/v1/ledger/verify", roles=("admin", "dsl"),
         summary="Check the disclosure ledger: 200 {intact, entries, head: {seq, hash}, unkeyed_entries, "
                 "anchors_checked, first_broken?: {seq, reason}}")
    def verify_ledger(self, caller, body):
        return sent(LedgerVerification.read(self.consent_rpc.verify_ledger()))

    @api("POST", "/api/v1/sharing-decisions", roles=STAFF_ROLES, body=SharingQuestion,
         summary="Ask whether categories may be shared (records nothing, shares nothing)",
         example={"child_ref": "c_0123456789abcdef0123456789abcdef", "to_org": "health:cardiff-vale",
                  "purpose": "referral", "categories": ["contact", "health_wellbeing"]})
    def sharing_decision(self, caller, body):
        request = DecideRequest.parse({**body.wire(), "from_org": caller.org, "caller": assertion(caller)})
        return DecideReply.read(self.consent_rpc.decide(request.wire())).model_dump()
