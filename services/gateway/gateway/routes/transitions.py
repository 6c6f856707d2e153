"""Transitions: a primary's Year 6 records to the secondary, receipts, and the CTF (API.md)."""
from __future__ import annotations

import hashlib
from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from werkzeug.wrappers import Response

from pont_shared.contract.errors import Forbidden, Invalid

from ..api import api, assertion, errors_of
from ..problems import RequestInvalid
from ..rpc import AgencyLinks, ServiceRpc
from ..schemas import Child, OrgId, org_id

SENDERS = ("transition_lead",)
RECEIVERS = ("transition_lead", "dsl")
SCHOOLS = ("transition_lead", "dsl")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Basic(_Strict):
    gender: Literal["M", "F", "U"] | None = None


class Attendance(_Strict):
    year: int = Field(ge=2000, le=2100, description="the academic year's start, e.g. 2025 for 2025/26")
    sessions_possible: int = Field(ge=0, le=1000)
    sessions_authorised: int = Field(ge=0, le=1000)
    sessions_unauthorised: int = Field(ge=0, le=1000)


class Idp(_Strict):
    maintained_by: Literal["school", "local_authority"]


class Aln(_Strict):
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


class Wellbeing(_Strict):
    notes: str = Field(max_length=4000)


class Involvement(_Strict):
    agency: str
    service: str = Field(max_length=80)
    since: date | None = None

    @field_validator("agency")
    @classmethod
    def _agency(cls, value: str) -> str:
        return org_id(value)


class ChildProtection(_Strict):
    status: Literal["open", "closed", "historic"]
    summary: str = Field(max_length=4000)
    on_register: bool = False


class Sections(_Strict):
    attendance: Attendance | None = None
    aln: Aln | None = None
    wellbeing: Wellbeing | None = None
    agency_involvement: list[Involvement] | None = Field(default=None, max_length=50)
    child_protection: ChildProtection | None = None


class Pupil(_Strict):
    child: Child
    basic: Basic | None = None
    sections: Sections = Field(default_factory=Sections)


class NewTransitions(_Strict):
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


class CohortCtf(_Strict):
    from_school: OrgId
    to_school: OrgId


class ImportedQuery(_Strict):
    child_ref: str | None = Field(default=None, max_length=64)


class InboxQuery(_Strict):
    status: Literal["sent", "overdue", "acknowledged"] | None = None


class CtfCohort(_Strict):
    xml: str = Field(max_length=20_000_000, description="a Common Transfer File exported by the school's MIS")
    to_school: OrgId | None = Field(default=None, description="if given, must be the file's destination school")
    send: bool = False


class SentQuery(_Strict):
    status: Literal["prepared", "sent", "overdue", "acknowledged"] | None = None
    to_school: OrgId | None = None


class CtfImport(_Strict):
    xml: str = Field(max_length=20_000_000)


EXAMPLE = {
    "to_school": "school:6614002",
    "send": True,
    "pupils": [{
        "child": {"upn": "T661000000042", "given_name": "Megan", "family_name": "Pritchard",
                  "date_of_birth": "2014-05-03"},
        "basic": {"gender": "F"},
        "sections": {
            "attendance": {"year": 2025, "sessions_possible": 380, "sessions_authorised": 12,
                           "sessions_unauthorised": 3},
            "aln": {"decision_outcome": "has_aln", "idp": {"maintained_by": "school"},
                    "areas_of_need": ["SLCN"], "review_date": "2026-03-01"},
            "wellbeing": {"notes": "Settles best with a named adult at the start of the day."},
        },
    }],
}


def _ctf_response(result: dict) -> Response:
    """The file, and how many records it could not carry (their identifiers were withheld)."""
    return Response(result["xml"], status=200, content_type="application/xml",
                    headers={"Content-Disposition": f'attachment; filename="{result["file_name"]}"',
                             "Pont-CTF-Pupils": str(result["pupils"]),
                             "Pont-CTF-Omitted": str(result["omitted"])})


def _cohort_of_ctf(parsed: dict, caller, body: CtfCohort) -> NewTransitions:
    """A CTF the sending school's MIS exported, as the cohort request it stands for (validated as one).

    The file must come from the caller's school; its pupils' identifiers, attendance and ALN
    become their records' sections. A pupil the file carries that the API would refuse is a 422
    naming `xml.pupils.N.<field>`."""
    if parsed["from_school"] != caller.org:
        raise Invalid("the file is from another school",
                      [{"field": "xml", "message": "its source school is not yours"}])
    if body.to_school is not None and parsed["to_school"] != body.to_school:
        raise Invalid("the file is addressed to another school",
                      [{"field": "to_school", "message": "not the file's destination school"}])
    pupils = []
    for sections in parsed["pupils"]:
        identifiers = dict(sections["identifiers"])
        gender = identifiers.pop("gender", None)
        pupils.append({"child": identifiers, **({"basic": {"gender": gender}} if gender else {}),
                       "sections": {k: v for k, v in sections.items() if k in ("attendance", "aln")}})
    try:
        return NewTransitions.model_validate({"to_school": parsed["to_school"], "pupils": pupils, "send": body.send})
    except ValidationError as exc:
        raise RequestInvalid(errors_of(exc, "xml.")) from exc


def _school_only(caller) -> None:
    if caller.org_kind != "school":
        raise Forbidden("transfer files are imported into a school's own store")


class TransitionRoutes:
    """Routes of API.md's "Transitions" table."""

    transitions = ServiceRpc("transitions")
    transition_agencies = AgencyLinks()

    @api("POST", "/api/v1/transitions", roles=SENDERS, body=NewTransitions, status=201, idempotent=True,
         example=EXAMPLE, summary="Prepare (and with send: true, send) transition records for a cohort")
    def create_transitions(self, caller, body, idempotency_key=None):
        records = self.transitions.prepare(body.model_dump(mode="json", exclude_none=True), assertion(caller),
                                           idempotency_key)
        return 201, {"ids": [r["id"] for r in records], "records": records}

    @api("POST", "/api/v1/transitions/from-ctf", roles=SENDERS, body=CtfCohort, status=201, idempotent=True,
         example={"xml": "<?xml version='1.0' encoding='UTF-8'?><CTfile>...</CTfile>", "send": False},
         summary="Prepare (and with send: true, send) a cohort's records from a CTF the sending school's MIS "
                 "exported: its destination is the receiving school, its pupils' identifiers, attendance and "
                 "ALN the sections; answered as POST /api/v1/transitions is",
         responses={422: "not a valid CTF, not from your school, or a pupil the API would refuse (`xml...`)"})
    def create_transitions_from_ctf(self, caller, body, idempotency_key=None):
        cohort = _cohort_of_ctf(self.transitions.import_ctf(body.xml, assertion(caller)), caller, body)
        records = self.transitions.prepare(cohort.model_dump(mode="json", exclude_none=True), assertion(caller),
                                           idempotency_key)
        return 201, {"ids": [r["id"] for r in records], "records": records}

    @api("POST", "/api/v1/transitions/{id}/send", roles=SENDERS, summary="Send a prepared record",
         example={}, responses={404: "not your school's record", 409: "already sent"})
    def send_transition(self, caller, body, id):
        return self.transitions.send(id, assertion(caller))

    @api("GET", "/api/v1/transitions/inbox", roles=RECEIVERS, query=InboxQuery,
         summary="Records sent to the caller's school, with included and withheld sections")
    def transitions_inbox(self, caller, body, query):
        return self.transitions.inbox(assertion(caller), query.status)

    @api("GET", "/api/v1/transitions", roles=SENDERS, query=SentQuery,
         summary="The sending school's own records, oldest first: the pupil as the school supplied it, what "
                 "is included and what withheld and why, and when each was sent, is due, was acknowledged "
                 "or went overdue")
    def sent_transitions(self, caller, body, query):
        return self.transitions.sent(assertion(caller), query.status, query.to_school)

    @api("POST", "/api/v1/transitions/{id}/acknowledge", roles=RECEIVERS, example={},
         summary="The receiving school confirms receipt", responses={404: "not sent to your school"})
    def acknowledge_transition(self, caller, body, id):
        return self.transitions.acknowledge(id, assertion(caller))

    @api("GET", "/api/v1/transitions/{id}/ctf", roles=SCHOOLS, content_type="application/xml",
         summary="One record as a Common Transfer File", responses={404: "not your school's record"})
    def transition_ctf(self, caller, body, id):
        return _ctf_response(self.transitions.ctf(id, assertion(caller)))

    @api("GET", "/api/v1/transitions/ctf", roles=SCHOOLS, query=CohortCtf, content_type="application/xml",
         summary="A cohort (every record between two schools) as one Common Transfer File; records whose "
                 "identifiers were withheld are left out, counted in the Pont-CTF-Omitted header")
    def cohort_ctf(self, caller, body, query):
        return _ctf_response(self.transitions.cohort_ctf(query.from_school, query.to_school, assertion(caller)))

    @api("POST", "/api/v1/transitions/ctf-import", roles=SCHOOLS, body=CtfImport,
         example={"xml": "<?xml version='1.0' encoding='UTF-8'?><CTfile>...</CTfile>"},
         summary="Validate a Common Transfer File and import its pupils into the caller's school's own store",
         responses={422: "not a valid CTF, or addressed to another school (`xml`)"})
    def import_ctf(self, caller, body):
        _school_only(caller)
        parsed = self.transitions.import_ctf(body.xml, assertion(caller))
        transfer = {"source_file": "sha256:" + hashlib.sha256(body.xml.encode("utf-8")).hexdigest(),
                    "from_school": parsed["from_school"], "to_school": parsed["to_school"],
                    "pupils": [{k: v for k, v in p.items() if k != "child_ref"} for p in parsed["pupils"]]}
        counts = self.transition_agencies(caller.org).import_transfer(transfer, assertion(caller))
        return {**parsed, **counts}

    @api("GET", "/api/v1/transitions/imported", roles=SCHOOLS, query=ImportedQuery,
         summary="The transfer records the caller's school imported from Common Transfer Files")
    def imported_transfers(self, caller, body, query):
        _school_only(caller)
        return self.transition_agencies(caller.org).imported_transfers(assertion(caller), query.child_ref)
