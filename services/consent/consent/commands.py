"""The shapes RPC callers send, checked before the rules run; a bad shape is `Invalid` naming the field."""
from __future__ import annotations

from datetime import date
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from pont_shared.contract.errors import Invalid
from pont_shared.identity import upn_problem

M = TypeVar("M", bound=BaseModel)


class _In(BaseModel):
    model_config = ConfigDict(extra="ignore")


class CallerIn(_In):
    sub: str
    org: str
    roles: list[str] = []


class AgreementIn(_In):
    parties: list[str]
    purposes: list[str]
    categories: list[str]
    valid_from: date
    valid_to: date


class ChildIn(_In):
    upn: str
    date_of_birth: date | None = None

    @field_validator("upn")
    @classmethod
    def _valid_upn(cls, value: str) -> str:
        problem = upn_problem(value)
        if problem:
            raise ValueError(problem)
        return value


class GivenByIn(_In):
    name: str = ""
    relationship: str


class ConsentIn(_In):
    child: ChildIn
    given_by: GivenByIn
    competence_assessed: bool = False
    recipients: list[str]
    purposes: list[str]
    categories: list[str]
    expires_on: date | None = None
    evidence: str


class SharingRequestIn(_In):
    child_ref: str
    from_org: str
    to_org: str
    purpose: str
    categories: list[str]
    caller: CallerIn = CallerIn(sub="system", org="", roles=[])  # work a service does on no one's request
    basis: str | None = None
    justification: str | None = None
    subject_kind: Literal["referral", "transition", "appointment"] | None = None
    subject_id: str | None = None
    idempotency_key: str | None = None


def parse(model: type[M], data, field_prefix: str = "") -> M:
    """`data` as `model`, or `Invalid` listing each bad field (never echoing its value)."""
    try:
        return model.model_validate(data if data is not None else {})
    except ValidationError as exc:
        errors = [{"field": field_prefix + ".".join(str(p) for p in err["loc"]) or "body", "message": err["msg"]}
                  for err in exc.errors(include_input=False, include_url=False)]
        raise Invalid("the request has invalid fields", errors) from None
