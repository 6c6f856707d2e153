"""The consent service's family methods: invitations, a family's links to its children, the
consents and the history a family may see, and the DSL's exemption of a disclosure from it."""
from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator

from pont_shared.contract.events import Category, Purpose
from pont_shared.contract.rpc import Reply, Request
from pont_shared.contract.rpc.consent import ConsentChild
from pont_shared.contract.rpc.types import Child, Name, OrgId, Text

# an invitation's one-time code as the school hands it over: 4 groups of 4 letters and digits
INVITE_CODE_PATTERN = r"^[A-Z2-9]{4}(-[A-Z2-9]{4}){3}$"


class NewInvite(Request):
    """A school invites the parent or carer of a child, or the young person (POST /api/v1/family/invites).

    A young person (`relationship: self`) decides for themselves once 16 or over, or younger when
    the school has assessed them as competent (`competence_assessed`).
    """

    child: Child
    relationship: Literal["parent", "carer", "self"]
    competence_assessed: bool = False

    def to_record(self) -> RecordInvite:
        """The request to the consent service: the child by UPN, date of birth and given name only."""
        return RecordInvite.model_validate({
            **self.model_dump(exclude={"child"}), "given_name": self.child.given_name,
            "child": self.child.model_dump(include={"upn", "date_of_birth"})})


class RecordInvite(Request):
    child: ConsentChild
    given_name: Name   # how the family's pages name their child
    relationship: Literal["parent", "carer", "self"]
    competence_assessed: bool = False


class InviteCreated(Reply):
    """The invitation: `code` is shown once, to the member of staff, to pass on through the school's
    own channel; only a hash of it is kept."""

    id: str
    child_ref: str
    relationship: str
    code: str
    expires_at: str


class Redeem(Request):
    """A family member, signed in, redeems the code the school gave them (POST /api/v1/family/links)."""

    code: Annotated[str, BeforeValidator(lambda typed: typed.strip().upper() if isinstance(typed, str) else typed),
                    Field(pattern=INVITE_CODE_PATTERN, max_length=19,
                          description="the code as the school gave it, e.g. ABCD-EFGH-JKLM-NPQR (any case)")]


class FamilyChild(Reply):
    """A child the family member is linked to, and as whom."""

    child_ref: str
    given_name: str
    relationship: str
    decides_for_self: bool = Field(description="the young person decides for themselves (16+, or assessed "
                                               "as competent); their own consents are theirs alone")
    linked_at: str


class FamilyWithdrawal(Request):
    reason: Text | None = None


class SharedEntry(Reply):
    """One line of "what was shared about my child": a disclosure, or a consent withdrawn."""

    id: str
    kind: Literal["disclosure", "withdrawal"]
    at: str
    from_org: str
    to_org: str | None = None
    purpose: str | None = None
    categories: list[str]
    basis: str


class NewExemption(Request):
    """A DSL keeps one disclosure out of the family's view (POST /api/v1/disclosures/{id}/family-exemption):
    telling the family could put the child at risk. Reviewed by `review_on` at the latest."""

    reason: Text
    review_on: date


class ExemptionView(Reply):
    id: str
    disclosure_id: str
    child_ref: str
    reason: str
    review_on: date
    marked_by: str
    marked_at: str
    due: bool = False   # its review date has come


class ExemptionReview(Request):
    """The DSL's review of an exemption: kept until a new review date, or lifted (the family then sees the
    disclosure); either way with a reason, in the ledger."""

    decision: Literal["keep", "lift"]
    reason: Text
    review_on: date | None = Field(None, description="the next review date, within a year (keep only)")


class Preferences(Request):
    """How the family member wants to be told of their child's appointments and the like
    (PUT /api/v1/family/preferences): by email, or not at all; in Welsh or in English."""

    channel: Literal["email", "none"]
    email: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=320)] | None = Field(
        None, validate_default=True)
    language: Literal["cy", "en"]

    @field_validator("email")
    @classmethod
    def _needed_for_email(cls, email: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("channel") == "email" and not email:
            raise ValueError("an email address is needed to be told by email")
        return email


class PreferencesView(Reply):
    channel: str
    email: str | None = None
    language: str
    updated_at: str | None = None


class NewConsentRequest(Request):
    """A practitioner asks the child's family for consent (POST /api/v1/consent-requests)."""

    child: Child
    recipients: list[OrgId] = Field(min_length=1, max_length=20)
    purposes: list[Purpose] = Field(min_length=1)
    categories: list[Category] = Field(min_length=1)

    def to_record(self) -> RecordConsentRequest:
        return RecordConsentRequest.model_validate({**self.model_dump(exclude={"child"}),
                                                    "child": self.child.model_dump(include={"upn", "date_of_birth"})})


class RecordConsentRequest(Request):
    child: ConsentChild
    recipients: list[OrgId] = Field(min_length=1, max_length=20)
    purposes: list[Purpose] = Field(min_length=1)
    categories: list[Category] = Field(min_length=1)


class ConsentRequestView(Reply):
    """What the family is asked to consent to; `referral_id` when a referral waits for it."""

    id: str
    child_ref: str
    recipients: list[str]
    purposes: list[str]
    categories: list[str]
    asked_by_org: str
    referral_id: str | None = None
    asked_at: str
    status: str


class GiveConsent(Request):
    """The family gives the consent asked for, until a day they may choose (none: until withdrawn)."""

    expires_on: date | None = None
