"""The transitions service's RPC contract. Each method takes the caller (the gateway's assertion):

- `prepare(request: NewTransitions, caller, idempotency_key)` → [`TransitionSummary`]
  (`NewTransitions` is the sending school's request body, POST /api/v1/transitions, passed on as it is);
- `send(transition_id, caller)`, `acknowledge(transition_id, caller)` → `TransitionSummary`;
  `acknowledge_many(transition_ids, caller)` → [`TransitionSummary`];
- `inbox(caller, status)` → [`InboxItem`]: the receiving school's records, with their sections;
- `sent(caller, status, to_school)` → [`SentItem`]: the sending school's records, with their receipt;
- `get(transition_id, caller)` → `TransitionView`;
- `ctf(transition_id, caller)`, `cohort_ctf(from_school, to_school, caller)` → `CtfFile`;
- `import_ctf(xml, caller)` → `ParsedCtf`: a Common Transfer File parsed back into pupils' sections.

And an organisation's agency link keeps a school's imported files (`agency_link_<org>`):
`import_transfer(transfer: Transfer, caller)` → `TransferCounts`;
`imported_transfers(caller, child_ref)` → [`ImportedRecord`].
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pont_shared.contract.rpc import Reply, Request
from pont_shared.contract.rpc.types import Child, org_id


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Basic(_Section):
    gender: Literal["M", "F", "U"] | None = None


class Attendance(_Section):
    year: int = Field(ge=2000, le=2100, description="the academic year's start, e.g. 2025 for 2025/26")
    sessions_possible: int = Field(ge=0, le=1000)
    sessions_authorised: int = Field(ge=0, le=1000)
    sessions_unauthorised: int = Field(ge=0, le=1000)


class Idp(_Section):
    maintained_by: Literal["school", "local_authority"]


class Aln(_Section):
    """Welsh ALN (ALNET 2018): the decision, the individual development plan, areas of need, review."""

    decision_outcome: Literal["has_aln", "no_aln", "pending"]
    idp: Idp | None = None
    areas_of_need: list[str] = Field(default_factory=list, max_length=20)
    review_date: date | None = None

    @field_validator("areas_of_need")
    @classmethod
    def _codes(cls, value: list[str]) -> list[str]:
        for code in value:
            if not (2 <= len(code) <= 5 and code.isalpha() and code.isupper()):
                raise ValueError("areas of need are codes of 2-5 capital letters, e.g. SLCN, ASD, MLD")
        return value


class Wellbeing(_Section):
    notes: str = Field(max_length=4000)


class Involvement(_Section):
    agency: str
    service: str = Field(max_length=80)
    since: date | None = None

    @field_validator("agency")
    @classmethod
    def _agency(cls, value: str) -> str:
        return org_id(value)


class ChildProtection(_Section):
    status: Literal["open", "closed", "historic"]
    summary: str = Field(max_length=4000)
    on_register: bool = False


class Sections(_Section):
    attendance: Attendance | None = None
    aln: Aln | None = None
    wellbeing: Wellbeing | None = None
    agency_involvement: list[Involvement] | None = Field(default=None, max_length=50)
    child_protection: ChildProtection | None = None


class Pupil(_Section):
    child: Child
    basic: Basic | None = None
    sections: Sections = Field(default_factory=Sections)


class NewTransitions(Request):
    """A cohort's transition records, as the sending school asks for them (and with send: true, sends)."""

    to_school: str
    pupils: list[Pupil] = Field(min_length=1, max_length=5000)
    send: bool = False

    @field_validator("to_school")
    @classmethod
    def _school(cls, value: str) -> str:
        org_id(value)
        if not value.startswith("school:"):
            raise ValueError("transition records go to a school")
        return value


class TransitionSummary(Reply):
    """One pupil's record: which sections are included, which withheld and why."""

    id: str
    child_ref: str
    from_school: str
    to_school: str
    status: str
    included: list[str]
    withheld: list[dict]


class TransitionView(TransitionSummary):
    sent_at: datetime | None = None
    acknowledged_at: datetime | None = None


class InboxItem(TransitionSummary):
    """A record sent to the caller's school, with what it carries (child protection for a DSL only)."""

    sent_at: datetime | None = None
    due_at: datetime | None = None
    acknowledged_at: datetime | None = None
    sections: dict
    restricted: list[dict] = []


class SentItem(TransitionSummary):
    """A record of the caller's school, with its receipt state and the pupil as the school supplied them."""

    pupil: dict
    prepared_at: datetime | None = None
    awaiting_send: bool = False
    sent_at: datetime | None = None
    due_at: datetime | None = None
    acknowledged_at: datetime | None = None
    overdue_at: datetime | None = None


class CtfFile(Reply):
    file_name: str
    xml: str
    pupils: int
    omitted: int


class ParsedCtf(Reply):
    """A Common Transfer File's content: its schools, and per pupil the sections it carries (with child_ref)."""

    from_school: str
    to_school: str
    pupils: list[dict]


class Transfer(Request):
    """A parsed CTF for a school's own store, under the file's digest (`source_file`)."""

    source_file: str = Field(min_length=1, max_length=200)
    from_school: str = Field(min_length=1, max_length=80)
    to_school: str = Field(min_length=1, max_length=80)
    pupils: list[dict] = Field(max_length=100_000)


class TransferCounts(Reply):
    source_file: str
    imported: int
    already_held: int


class ImportedRecord(Reply):
    id: str
    child_ref: str
    source_file: str
    from_school: str
    imported_at: datetime
    imported_by: str
    sections: dict
