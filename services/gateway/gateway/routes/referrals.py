"""The "Referrals" routes of API.md: raise and follow referrals; the recipient's inbox and decisions."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from pont_shared.contract.errors import Forbidden, Invalid, NotFound
from pont_shared.contract.rpc.agency_link import AgencyDecision, CopyView, DecisionView
from pont_shared.contract.rpc.consent import ConsentView, DecideReply, DecideRequest
from pont_shared.contract.rpc.referrals import (
    FoundChild,
    NewReferral,
    RaisedReferral,
    RaiseReferral,
    ReferralStatus,
    ReferralView,
)
from pont_shared.identity import upn_problem
from pont_shared.messaging.dependencies import ChildRefs

from ..api import api, assertion, sent
from ..rpc import AgencyLinks, ServiceRpc
from ..schemas import Text

RAISER_ROLES = ("school_staff", "dsl")
RECIPIENT_ROLES = ("school_staff", "dsl", "school_nurse", "health_practitioner", "social_worker", "youth_worker")
Code = Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,60}$")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Decline(_Body):
    reason: Text
    reason_code: Code | None = Field(None, description="not_eligible, already_involved, insufficient_information, "
                                                       "no_capacity or other")


class Close(_Body):
    outcome: Text
    outcome_code: Code | None = Field(None, description="support_completed, referred_on, no_further_action, "
                                                        "family_disengaged or other")


class ReferralQuery(_Body):
    status: Literal["awaiting_consent", "sent", "accepted", "declined", "closed", "withdrawn"] | None = None
    child_ref: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None


class ChildQuery(_Body):
    upn: Annotated[str, StringConstraints(strip_whitespace=True, max_length=13)] | None = None
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=100)] | None = None

    @field_validator("upn")
    @classmethod
    def _valid_upn(cls, value: str | None) -> str | None:
        problem = upn_problem(value) if value is not None else None
        if problem:
            raise ValueError(problem)
        return value


EXAMPLE_REFERRAL = {
    "child": {"upn": "A661000000001", "given_name": "Ffion", "family_name": "Jones", "date_of_birth": "2015-04-12"},
    "to_org": "health:cardiff-vale", "service": "school_nursing", "reason": "low mood",
    "details": "Withdrawn in class for three weeks; asked to see the nurse.", "urgency": "urgent",
    "share": ["contact", "health_wellbeing"],
    "information": {"health_wellbeing": "Reports poor sleep and headaches."},
}


def _may_raise(caller, body: NewReferral) -> None:
    """A school raises referrals; only its DSL shares on a safeguarding basis, and says why."""
    if caller.org_kind != "school":
        raise Forbidden("referrals are raised by a school")
    if body.basis == "safeguarding":
        if not caller.has_any("dsl"):
            raise Forbidden("sharing on a safeguarding basis needs the dsl role")
        if body.justification is None:
            raise Invalid("a safeguarding basis needs a written justification",
                          [{"field": "justification", "message": "required when basis is safeguarding"}])


class ReferralRoutes:
    """Mixed into GatewayService: referrals go to the referrals service, decisions to the recipient's agency_link."""

    referrals_rpc = ServiceRpc("referrals")
    referral_agencies = AgencyLinks()
    referral_child_refs = ChildRefs()
    referral_consent_rpc = ServiceRpc("consent")

    @api("POST", "/api/v1/referrals", roles=RAISER_ROLES, body=NewReferral, status=201, idempotent=True,
         summary="Raise a referral: sent if sharing is allowed, otherwise awaiting consent",
         example=EXAMPLE_REFERRAL, responses={409: "an open referral for this child and service exists "
                                                   "(`existing` links to it)"})
    def raise_referral(self, caller, body, idempotency_key=None):
        _may_raise(caller, body)
        request = RaiseReferral.parse({**body.wire(), "caller": assertion(caller), "idempotency_key": idempotency_key})
        return 201, RaisedReferral.read(self.referrals_rpc.raise_referral(request.wire())).model_dump()

    @api("POST", "/api/v1/referrals/preview", roles=RAISER_ROLES, body=NewReferral, example=EXAMPLE_REFERRAL,
         summary="What raising this referral would share now and what would be held for want of consent; records "
                 "and shares nothing: {child_ref, decisions: [{category, allowed, basis, reason}], flagged_for_review}")
    def preview_referral(self, caller, body):
        _may_raise(caller, body)
        statutory = body.basis != "consent"
        question = DecideRequest.parse({
            "child_ref": self.referral_child_refs(body.child.upn), "from_org": caller.org, "to_org": body.to_org,
            "purpose": "referral", "categories": body.wire()["share"], "basis": body.basis if statutory else None,
            "justification": body.justification if statutory else None, "caller": assertion(caller)})
        reply = DecideReply.read(self.referral_consent_rpc.decide(question.wire()))
        return {"child_ref": question.child_ref, **reply.model_dump(mode="json")}

    @api("GET", "/api/v1/referrals/{id}", summary="A referral with its chronology (referring school or recipient)",
         responses={404: "unknown referral, or not the caller's organisation's"})
    def get_referral(self, caller, body, id):
        return sent(ReferralView.read(self.referrals_rpc.get(id, assertion(caller))))

    @api("GET", "/api/v1/referrals", roles=RAISER_ROLES, query=ReferralQuery,
         summary="The referrals the caller's school raised")
    def list_referrals(self, caller, body, query):
        return [sent(referral) for referral in ReferralView.read_many(
            self.referrals_rpc.list_referrals(assertion(caller), query.status, query.child_ref))]

    @api("GET", "/api/v1/children", roles=RAISER_ROLES, query=ChildQuery,
         summary="Find a pupil the caller's school has referred, by `upn` or by `name` (each word begins one of "
                 "the pupil's names; case and accents ignored): [{child_ref, upn, given_name, family_name, "
                 "date_of_birth, referrals, last_referred_at}], most recently referred first, at most 50; by "
                 "`upn` also a pupil the school recorded consent for but never referred (names null, referrals 0)",
         responses={422: "neither or both of upn and name, or a UPN that is not valid"})
    def find_children(self, caller, body, query):
        if caller.org_kind != "school":
            raise Forbidden("a school finds its own pupils")
        if (query.upn is None) == (query.name is None):
            raise Invalid("give a upn or a name", [{"field": "query.upn", "message": "give either upn or name"}])
        if query.name is not None:
            return [sent(child) for child in FoundChild.read_many(
                self.referrals_rpc.find_children(assertion(caller), name=query.name))]
        ref = self.referral_child_refs(query.upn)
        found = [sent(child) for child in FoundChild.read_many(
            self.referrals_rpc.find_children(assertion(caller), child_ref=ref))]
        if not found and self._consent_recorded_here(caller, ref):  # known to the school by its consent alone
            found = [{"child_ref": ref, "upn": query.upn, "given_name": None, "family_name": None,
                      "date_of_birth": None, "referrals": 0, "last_referred_at": None}]
        return found

    def _consent_recorded_here(self, caller, child_ref: str) -> bool:
        try:
            consents = self.referral_consent_rpc.list_consents(child_ref, assertion(caller))
        except NotFound:
            return False
        return any(consent.recorded_by_org == caller.org for consent in ConsentView.read_many(consents))

    @api("POST", "/api/v1/referrals/{id}/withdraw", roles=RAISER_ROLES,
         summary="The referring school withdraws its referral", responses={404: "unknown referral", 409: "not open"})
    def withdraw_referral(self, caller, body, id):
        return sent(ReferralStatus.read(self.referrals_rpc.withdraw(id, assertion(caller))))

    @api("GET", "/api/v1/inbox/referrals", roles=RECIPIENT_ROLES,
         summary="What was disclosed to the caller's organisation, from its own store")
    def referral_inbox(self, caller, body):
        return [sent(copy) for copy in CopyView.read_many(self.referral_agencies(caller.org).inbox(
            "referral", assertion(caller)))]

    @api("POST", "/api/v1/referrals/{id}/accept", roles=RECIPIENT_ROLES,
         summary="The recipient accepts the referral", responses={404: "not a referral to the caller's organisation",
                                                                  409: "not in a state to accept"})
    def accept_referral(self, caller, body, id):
        return self._decide(caller, AgencyDecision(subject_id=id, decision="accepted"))

    @api("POST", "/api/v1/referrals/{id}/decline", roles=RECIPIENT_ROLES, body=Decline,
         summary="The recipient declines the referral; the reason stays in its own store, the code is shared",
         example={"reason": "Already open to CAMHS.", "reason_code": "already_involved"},
         responses={404: "not a referral to the caller's organisation", 409: "not in a state to decline"})
    def decline_referral(self, caller, body, id):
        return self._decide(caller, AgencyDecision(subject_id=id, decision="declined", reason=body.reason,
                                                   reason_code=body.reason_code))

    @api("POST", "/api/v1/referrals/{id}/close", roles=RECIPIENT_ROLES, body=Close,
         summary="The recipient closes the referral with an outcome",
         example={"outcome": "Six sessions completed; sleeping better.", "outcome_code": "support_completed"},
         responses={404: "not a referral to the caller's organisation", 409: "not in a state to close"})
    def close_referral(self, caller, body, id):
        return self._decide(caller, AgencyDecision(subject_id=id, decision="closed", outcome=body.outcome,
                                                   reason_code=body.outcome_code))

    def _decide(self, caller, decision: AgencyDecision) -> dict:
        """The recipient's decision, recorded by its own agency link."""
        return sent(DecisionView.read(self.referral_agencies(caller.org).decide(decision.wire(), assertion(caller))))
