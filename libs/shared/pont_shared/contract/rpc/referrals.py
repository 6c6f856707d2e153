"""The referrals service's RPC contract: `raise_referral(RaiseReferral) -> RaisedReferral`;
`open_involvement(child_refs, caller)` (transitions vouching for a transition lead) →
{child_ref: [`OpenReferral`]}, read with `OpenReferral.read_by_child`.

`NewReferral` is what a school sends (POST /api/v1/referrals); `RaiseReferral` adds who raises it and
the client's Idempotency-Key, as the gateway passes it on.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator

from pont_shared.contract.events import Category
from pont_shared.contract.rpc import ActsForCaller, Reply, ReplyUnreadable, Request
from pont_shared.contract.rpc.types import Child, ChildRef, Id, OrgId, Service, Text

Urgency = Literal["routine", "urgent", "safeguarding"]
Details = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=10000)]
InfoKey = Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,40}$")]
InfoLine = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]
# what a school shares under one category: free text, or (always for `contact`) a flat object of short fields
Information = Details | Annotated[dict[InfoKey, InfoLine], Field(max_length=20)]


class NewReferral(Request):
    """A referral as a school raises it."""

    child: Child
    to_org: OrgId
    service: Service
    reason: Text
    details: Details
    urgency: Urgency
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


class RaiseReferral(NewReferral, ActsForCaller):
    """A school's referral, raised by `caller`; one `idempotency_key` raises it once."""

    idempotency_key: Id | None = None


class RaisedReferral(Reply):
    """The referral as raised: `sent` (what was shared) or `awaiting_consent`."""

    id: str
    child_ref: str
    status: str
    to_org: str
    service: str
    deadline: datetime | None = None
    shared_categories: list[str] = []


class ReferralStep(Reply):
    """One line of a referral's chronology."""

    status: str
    at: datetime
    by: str | None = None
    code: str | None = None


class ReferredChild(Reply):
    upn: str
    given_name: str
    family_name: str
    date_of_birth: str


class ReferralView(Reply):
    """A referral as the caller's organisation may see it (`get`, `list_referrals`): the referring
    school also sees the pupil, its reason, details, basis and the categories it asked to share."""

    id: str
    child_ref: str
    from_org: str
    to_org: str
    service: str
    urgency: str
    status: str
    deadline: datetime | None = None
    overdue: bool
    shared_categories: list[str] | None = None
    history: list[ReferralStep]
    child: ReferredChild | None = None
    reason: str | None = None
    details: str | None = None
    basis: str | None = None
    requested_categories: list[str] | None = None


class ReferralStatus(Reply):
    id: str
    status: str


class FoundChild(Reply):
    """A pupil the caller's school has referred (`find_children`), most recently referred first."""

    child_ref: str
    upn: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    date_of_birth: str | None = None
    referrals: int
    last_referred_at: str | None = None


class InvolvementQuery(Request):
    """Which of these children have open referrals from the caller's school (a cohort's, at most)."""

    child_refs: list[ChildRef] = Field(max_length=100_000)


class OpenReferral(Reply):
    """One of a school's open referrals of a pupil, as transitions reads it: codes and organisation
    ids only, never the reason or details."""

    service: str
    to_org: str
    status: str
    since: date

    @classmethod
    def read_by_child(cls, data) -> dict[str, list[OpenReferral]]:
        """`open_involvement`'s answer: {child_ref: [OpenReferral]}."""
        if not isinstance(data, dict):
            raise ReplyUnreadable(cls.__name__, "the reply is not an object keyed by child_ref")
        return {str(ref): cls.read_many(items) for ref, items in data.items()}
