"""The family routes (API.md "Families under /api/v1/family/…"), and the school's and DSL's part in them.

A family member's token carries role `family` and the organisation of the school that invited
them; the consent service links them to children and answers only about those.
"""
from __future__ import annotations

from pont_shared.auth import FAMILY_ROLE
from pont_shared.contract.rpc.consent import ConsentRecorded, ConsentStatus, ConsentView
from pont_shared.contract.rpc.family import (
    ConsentRequestView,
    ExemptionReview,
    ExemptionView,
    FamilyChild,
    FamilyWithdrawal,
    GiveConsent,
    InviteCreated,
    NewConsentRequest,
    NewExemption,
    NewInvite,
    Preferences,
    PreferencesView,
    Redeem,
    SharedEntry,
)

from ..api import api, assertion, sent
from ..rpc import ServiceRpc

FAMILY = (FAMILY_ROLE,)
NOT_YOURS = {404: "not a child the caller is linked to"}


class FamilyRoutes:
    """Mixed into GatewayService: each route hands a validated request to the consent service."""

    consent_rpc = ServiceRpc("consent", name_key="PONT_CONSENT_SERVICE")

    @api("POST", "/api/v1/family/invites", roles=("school_staff", "dsl"), body=NewInvite, status=201,
         summary="Invite a pupil's parent or carer, or the young person, to Pont: the one-time code (shown "
                 "only in this answer) goes to them through the school's own channel; valid 14 days",
         example={"child": {"upn": "A661000000001", "given_name": "Ffion", "family_name": "Jones",
                            "date_of_birth": "2015-04-12"}, "relationship": "parent"})
    def invite_family(self, caller, body):
        created = self.consent_rpc.invite_family(body.to_record().wire(), assertion(caller))
        return 201, InviteCreated.read(created).model_dump()

    @api("POST", "/api/v1/family/links", roles=FAMILY, body=Redeem, status=201,
         summary="Redeem an invitation's code: the signed-in family member is linked to that child",
         example={"code": "ABCD-EFGH-JKLM-NPQR"},
         responses={404: "no such invitation for the caller's school, or used, or expired",
                    409: "already linked to this child"})
    def redeem_family_invite(self, caller, body):
        return 201, FamilyChild.read(self.consent_rpc.redeem_family_invite(body.wire(), assertion(caller))).model_dump()

    @api("GET", "/api/v1/family/children", roles=FAMILY, summary="The children the family member is linked to")
    def family_children(self, caller, body):
        return [child.model_dump() for child in FamilyChild.read_many(self.consent_rpc.family_children(
            assertion(caller)))]

    @api("GET", "/api/v1/family/children/{child_ref}/consents", roles=FAMILY, responses=NOT_YOURS,
         summary="Every consent about the child the family member may see: who may share what, with whom, "
                 "for which purpose, until when")
    def family_consents(self, caller, body, child_ref):
        return [sent(consent) for consent in ConsentView.read_many(
            self.consent_rpc.family_consents(child_ref, assertion(caller)))]

    @api("POST", "/api/v1/family/consents/{id}/withdraw", roles=FAMILY, body=FamilyWithdrawal,
         summary="Withdraw a consent about the family's child (evidence: portal); every holder is told to "
                 "restrict what was shared on it", example={"reason": "We would rather talk to the nurse first"},
         responses={404: "not a consent about a child the caller is linked to", 409: "it has expired"})
    def family_withdraw_consent(self, caller, body, id):
        return ConsentStatus.read(self.consent_rpc.family_withdraw_consent(id, body.wire(), assertion(caller))
                                  ).model_dump()

    @api("GET", "/api/v1/family/children/{child_ref}/shared", roles=FAMILY, responses=NOT_YOURS,
         summary="What was shared about the child, with whom, why and when, and consents withdrawn; not what "
                 "a DSL judged telling the family could put the child at risk")
    def family_shared(self, caller, body, child_ref):
        return [entry.model_dump() for entry in SharedEntry.read_many(
            self.consent_rpc.family_shared(child_ref, assertion(caller)))]

    @api("GET", "/api/v1/family/preferences", roles=FAMILY,
         summary="How the family member is told of their children's appointments and the like, and in which "
                 "language (before any choice: not told, English)")
    def family_preferences(self, caller, body):
        return PreferencesView.read(self.consent_rpc.family_preferences(assertion(caller))).model_dump()

    @api("PUT", "/api/v1/family/preferences", roles=FAMILY, body=Preferences,
         summary="Choose to be told by email (at this address) or not at all, in Welsh or in English",
         example={"channel": "email", "email": "rhian@example.cymru", "language": "cy"})
    def set_family_preferences(self, caller, body):
        return PreferencesView.read(self.consent_rpc.set_family_preferences(body.wire(), assertion(caller))
                                    ).model_dump()

    @api("POST", "/api/v1/consent-requests", roles=("school_staff", "dsl", "school_nurse"), body=NewConsentRequest,
         status=201, summary="Ask the child's family for consent: each linked family member who chose to be told "
                             "is told, and may give it (or not) on the family pages",
         example={"child": {"upn": "A661000000001", "given_name": "Ffion", "family_name": "Jones",
                            "date_of_birth": "2015-04-12"}, "recipients": ["health:cardiff-vale"],
                  "purposes": ["appointment"], "categories": ["contact"]})
    def request_consent(self, caller, body):
        asked = self.consent_rpc.request_consent(body.to_record().wire(), assertion(caller))
        return 201, sent(ConsentRequestView.read(asked))

    @api("GET", "/api/v1/family/children/{child_ref}/consent-requests", roles=FAMILY, responses=NOT_YOURS,
         summary="The consents the family is asked for about the child, still open (a referral held for want "
                 "of consent asks too)")
    def family_consent_requests(self, caller, body, child_ref):
        return [sent(asked) for asked in ConsentRequestView.read_many(
            self.consent_rpc.family_consent_requests(child_ref, assertion(caller)))]

    @api("POST", "/api/v1/family/consent-requests/{id}/give", roles=FAMILY, body=GiveConsent, status=201,
         summary="Give the consent asked for (evidence: portal), as the parent, carer or young person the caller "
                 "is; a referral held for it goes on", example={"expires_on": "2027-07-31"},
         responses={404: "no such request about a child the caller is linked to", 409: "answered already"})
    def family_give_consent(self, caller, body, id):
        given = self.consent_rpc.family_give_consent(id, body.wire(), assertion(caller))
        return 201, ConsentRecorded.read(given).model_dump()

    @api("POST", "/api/v1/family/consent-requests/{id}/decline", roles=FAMILY,
         summary="Decline the consent asked for: nothing is shared on it",
         responses={404: "no such request about a child the caller is linked to", 409: "answered already"})
    def family_decline_request(self, caller, body, id):
        return sent(ConsentRequestView.read(self.consent_rpc.family_decline_request(id, assertion(caller))))

    @api("POST", "/api/v1/disclosures/{id}/family-exemption", roles=("dsl",), body=NewExemption, status=201,
         summary="Keep one disclosure out of the family's view, since telling them could put the child at "
                 "risk: a DSL of an organisation that made or received it, with a reason and a review date "
                 "(within a year); recorded in the ledger",
         example={"reason": "Section 47 enquiry under way", "review_on": "2027-03-01"},
         responses={404: "no such disclosure the caller's organisation made or received",
                    409: "already kept from the family"})
    def exempt_from_family(self, caller, body, id):
        return 201, ExemptionView.read(self.consent_rpc.exempt_from_family(id, body.wire(), assertion(caller))
                                       ).model_dump()

    @api("GET", "/api/v1/family-exemptions", roles=("dsl",),
         summary="The disclosures the caller's organisation keeps from families, the soonest review first; `due` "
                 "once the review date has come (the DSL's review queue shows those)")
    def family_exemptions(self, caller, body):
        return [view.model_dump() for view in ExemptionView.read_many(
            self.consent_rpc.family_exemptions(assertion(caller)))]

    @api("POST", "/api/v1/family-exemptions/{id}/review", roles=("dsl",), body=ExemptionReview,
         summary="Review an exemption: `keep` it until a new date within a year, or `lift` it (the family then "
                 "sees the disclosure; 204); the decision and its reason are recorded in the ledger",
         example={"decision": "keep", "reason": "The enquiry continues", "review_on": "2027-06-01"},
         responses={204: "lifted", 404: "no such exemption the caller's organisation marked"})
    def review_family_exemption(self, caller, body, id):
        kept = self.consent_rpc.review_family_exemption(id, body.wire(), assertion(caller))
        return (200, ExemptionView.read(kept).model_dump()) if kept else (204, "")
