"""Field types the RPC contracts (and the gateway's request bodies) share: one definition each."""
from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints, field_validator

from pont_shared.auth import ORG_PATTERN
from pont_shared.identity import upn_problem

OrgId = Annotated[str, StringConstraints(pattern=ORG_PATTERN.pattern)]


def org_id(value: str) -> str:
    """Validate an organisation id `<kind>:<code>`, saying what one looks like."""
    if not ORG_PATTERN.match(value):
        raise ValueError("an organisation id is <kind>:<code>, kind one of school, health, social_care, "
                         "youth_work, local_authority")
    return value


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
ChildRef = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Id = Annotated[str, StringConstraints(min_length=1, max_length=200)]
# the services a referral goes to and a co-located session offers
Service = Literal["school_nursing", "camhs", "social_care", "youth_work", "education_welfare", "families_first"]


class Child(BaseModel):
    """A child as a request names them (API.md); responses use `child_ref` instead."""

    model_config = ConfigDict(extra="forbid")

    upn: str
    given_name: Name
    family_name: Name
    date_of_birth: date

    @field_validator("upn")
    @classmethod
    def _valid_upn(cls, value: str) -> str:
        problem = upn_problem(value)
        if problem:
            raise ValueError(problem)
        return value
