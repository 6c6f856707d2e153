"""The referrals service's RPC contract: `raise_referral(RaiseReferral) -> RaisedReferral`.

`NewReferral` is what a school sends (POST /api/v1/referrals); `RaiseReferral` adds who raises it and
the client's Idempotency-Key, as the gateway passes it on.
"""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator

from pont_shared.contract.events import Category
from pont_shared.contract.rpc import ActsForCaller, Reply, Request
from pont_shared.contract.rpc.types import Child, Id, OrgId, Service, Text

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
