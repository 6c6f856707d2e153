"""The "Referrals" routes of API.md: raise and follow referrals; the recipient's inbox and decisions."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from pont_shared.contract.errors import Forbidden, Invalid
from pont_shared.contract.events import Category

from ..api import api, assertion
from ..rpc import AgencyLinks, ServiceRpc
from ..schemas import Child, OrgId, Text

RAISER_ROLES = ("school_staff", "dsl")
RECIPIENT_ROLES = ("school_staff", "dsl", "school_nurse", "health_practitioner", "social_worker", "youth_worker")
Service = Literal["school_nursing", "camhs", "social_care", "youth_work", "education_welfare", "families_first"]
Details = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=10000)]
Code = Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,60}$")]
InfoKey = Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,40}$")]
InfoLine = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]
# what a school shares under one category: free text, or (always for `contact`) a flat object of short fields
Information = Details | Annotated[dict[InfoKey, InfoLine], Field(max_length=20)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NewReferral(_Body):
    child: Child
    to_org: OrgId
    service: Service
    reason: Text
    details: Details
    urgency: Literal["routine", "urgent", "safeguarding"]
    share: list[Category] = Field(min_length=1)
    information: dict[Category, Information] = Field(
        default_factory=dict, description="what the school shares under each category (only categories in share): "
                                          "text up to 10,000 characters, or for `contact` an object of short fields")
    basis: Literal["consent", "safeguarding"] = "consent"
    justification: Text | None = None

    @field_validator("information")
    @classmethod
    def _contact_is_an_object(cls, value: dict) -> dict:
        if isinstance(value.get(Category.contact), str):
            raise ValueError("contact information is an object of fields, e.g. {\"phone\": \"...\"}")
        return value


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


EXAMPLE_REFERRAL = {
    "child": {"upn": "A661000000001", "given_name": "Ffion", "family_name": "Jones", "date_of_birth": "2015-04-12"},
    "to_org": "health:cardiff-vale", "service": "school_nursing", "reason": "low mood",
    "details": "Withdrawn in class for three weeks; asked to see the nurse.", "urgency": "urgent",
    "share": ["contact", "health_wellbeing"],
    "information": {"health_wellbeing": "Reports poor sleep and headaches."},
}


class ReferralRoutes:
    """Mixed into GatewayService: referrals go to the referrals service, decisions to the recipient's agency_link."""

    referrals_rpc = ServiceRpc("referrals")
    referral_agencies = AgencyLinks()

    @api("POST", "/api/v1/referrals", roles=RAISER_ROLES, body=NewReferral, status=201, idempotent=True,
         summary="Raise a referral: sent if sharing is allowed, otherwise awaiting consent",
         example=EXAMPLE_REFERRAL, responses={409: "an open referral for this child and service exists "
                                                   "(`existing` links to it)"})
    def raise_referral(self, caller, body, idempotency_key=None):
        if caller.org_kind != "school":
            raise Forbidden("referrals are raised by a school")
        if body.basis == "safeguarding":
            if not caller.has_any("dsl"):
                raise Forbidden("sharing on a safeguarding basis needs the dsl role")
            if body.justification is None:
                raise Invalid("a safeguarding basis needs a written justification",
                              [{"field": "justification", "message": "required when basis is safeguarding"}])
        request = body.model_dump(mode="json")
        request.update(caller=assertion(caller), idempotency_key=idempotency_key)
        return 201, self.referrals_rpc.raise_referral(request)

    @api("GET", "/api/v1/referrals/{id}", summary="A referral with its chronology (referring school or recipient)",
         responses={404: "unknown referral, or not the caller's organisation's"})
    def get_referral(self, caller, body, id):
        return self.referrals_rpc.get(id, assertion(caller))

    @api("GET", "/api/v1/referrals", roles=RAISER_ROLES, query=ReferralQuery,
         summary="The referrals the caller's school raised")
    def list_referrals(self, caller, body, query):
        return self.referrals_rpc.list_referrals(assertion(caller), query.status, query.child_ref)

    @api("POST", "/api/v1/referrals/{id}/withdraw", roles=RAISER_ROLES,
         summary="The referring school withdraws its referral", responses={404: "unknown referral", 409: "not open"})
    def withdraw_referral(self, caller, body, id):
        return self.referrals_rpc.withdraw(id, assertion(caller))

    @api("GET", "/api/v1/inbox/referrals", roles=RECIPIENT_ROLES,
         summary="What was disclosed to the caller's organisation, from its own store")
    def referral_inbox(self, caller, body):
        return self.referral_agencies(caller.org).inbox("referral", assertion(caller))

    @api("POST", "/api/v1/referrals/{id}/accept", roles=RECIPIENT_ROLES,
         summary="The recipient accepts the referral", responses={404: "not a referral to the caller's organisation",
                                                                  409: "not in a state to accept"})
    def accept_referral(self, caller, body, id):
        return self.referral_agencies(caller.org).decide(id, "accepted", assertion(caller))

    @api("POST", "/api/v1/referrals/{id}/decline", roles=RECIPIENT_ROLES, body=Decline,
         summary="The recipient declines the referral; the reason stays in its own store, the code is shared",
         example={"reason": "Already open to CAMHS.", "reason_code": "already_involved"},
         responses={404: "not a referral to the caller's organisation", 409: "not in a state to decline"})
    def decline_referral(self, caller, body, id):
        return self.referral_agencies(caller.org).decide(id, "declined", assertion(caller), reason=body.reason,
                                                         reason_code=body.reason_code)

    @api("POST", "/api/v1/referrals/{id}/close", roles=RECIPIENT_ROLES, body=Close,
         summary="The recipient closes the referral with an outcome",
         example={"outcome": "Six sessions completed; sleeping better.", "outcome_code": "support_completed"},
         responses={404: "not a referral to the caller's organisation", 409: "not in a state to close"})
    def close_referral(self, caller, body, id):
        return self.referral_agencies(caller.org).decide(id, "closed", assertion(caller), outcome=body.outcome,
                                                         reason_code=body.outcome_code)
