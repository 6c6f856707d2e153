"""Transitions: a primary's Year 6 records to the secondary, receipts, and the CTF (API.md)."""
from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from werkzeug.wrappers import Response

from pont_shared.contract.errors import Forbidden, Invalid
from pont_shared.contract.rpc.transitions import (
    CtfFile,
    ImportedRecord,
    InboxItem,
    NewTransitions,
    ParsedCtf,
    SentItem,
    Transfer,
    TransferCounts,
    TransitionSummary,
)

from ..api import api, assertion, errors_of, sent
from ..problems import RequestInvalid
from ..rpc import AgencyLinks, ServiceRpc
from ..schemas import OrgId

SENDERS = ("transition_lead",)
RECEIVERS = ("transition_lead", "dsl")
SCHOOLS = ("transition_lead", "dsl")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


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


def _ctf_response(reply) -> Response:
    """The file, and how many records it could not carry (their identifiers were withheld)."""
    ctf = CtfFile.read(reply)
    return Response(ctf.xml, status=200, content_type="application/xml",
                    headers={"Content-Disposition": f'attachment; filename="{ctf.file_name}"',
                             "Pont-CTF-Pupils": str(ctf.pupils), "Pont-CTF-Omitted": str(ctf.omitted)})


def _cohort_of_ctf(parsed: ParsedCtf, caller, body: CtfCohort) -> NewTransitions:
    """A CTF the sending school's MIS exported, as the cohort request it stands for (validated as one).

    The file must come from the caller's school; its pupils' identifiers, attendance and ALN
    become their records' sections. A pupil the file carries that the API would refuse is a 422
    naming `xml.pupils.N.<field>`."""
    if parsed.from_school != caller.org:
        raise Invalid("the file is from another school",
                      [{"field": "xml", "message": "its source school is not yours"}])
    if body.to_school is not None and parsed.to_school != body.to_school:
        raise Invalid("the file is addressed to another school",
                      [{"field": "to_school", "message": "not the file's destination school"}])
    pupils = []
    for sections in parsed.pupils:
        identifiers = dict(sections["identifiers"])
        gender = identifiers.pop("gender", None)
        pupils.append({"child": identifiers, **({"basic": {"gender": gender}} if gender else {}),
                       "sections": {k: v for k, v in sections.items() if k in ("attendance", "aln")}})
    try:
        return NewTransitions.model_validate({"to_school": parsed.to_school, "pupils": pupils, "send": body.send})
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
        return self._prepare(caller, body, idempotency_key)

    @api("POST", "/api/v1/transitions/from-ctf", roles=SENDERS, body=CtfCohort, status=201, idempotent=True,
         example={"xml": "<?xml version='1.0' encoding='UTF-8'?><CTfile>...</CTfile>", "send": False},
         summary="Prepare (and with send: true, send) a cohort's records from a CTF the sending school's MIS "
                 "exported: its destination is the receiving school, its pupils' identifiers, attendance and "
                 "ALN the sections; answered as POST /api/v1/transitions is",
         responses={422: "not a valid CTF, not from your school, or a pupil the API would refuse (`xml...`)"})
    def create_transitions_from_ctf(self, caller, body, idempotency_key=None):
        cohort = _cohort_of_ctf(ParsedCtf.read(self.transitions.import_ctf(body.xml, assertion(caller))), caller, body)
        return self._prepare(caller, cohort, idempotency_key)

    def _prepare(self, caller, cohort: NewTransitions, idempotency_key: str | None):
        records = TransitionSummary.read_many(self.transitions.prepare(
            cohort.model_dump(mode="json", exclude_none=True), assertion(caller), idempotency_key))
        return 201, {"ids": [record.id for record in records], "records": [sent(record) for record in records]}

    @api("POST", "/api/v1/transitions/{id}/send", roles=SENDERS, summary="Send a prepared record",
         example={}, responses={404: "not your school's record", 409: "already sent"})
    def send_transition(self, caller, body, id):
        return sent(TransitionSummary.read(self.transitions.send(id, assertion(caller))))

    @api("GET", "/api/v1/transitions/inbox", roles=RECEIVERS, query=InboxQuery,
         summary="Records sent to the caller's school, with included and withheld sections")
    def transitions_inbox(self, caller, body, query):
        return [sent(item) for item in InboxItem.read_many(self.transitions.inbox(assertion(caller), query.status))]

    @api("GET", "/api/v1/transitions", roles=SENDERS, query=SentQuery,
         summary="The sending school's own records, oldest first: the pupil as the school supplied it, what "
                 "is included and what withheld and why, and when each was sent, is due, was acknowledged "
                 "or went overdue")
    def sent_transitions(self, caller, body, query):
        return [sent(item) for item in SentItem.read_many(
            self.transitions.sent(assertion(caller), query.status, query.to_school))]

    @api("POST", "/api/v1/transitions/{id}/acknowledge", roles=RECEIVERS, example={},
         summary="The receiving school confirms receipt", responses={404: "not sent to your school"})
    def acknowledge_transition(self, caller, body, id):
        return sent(TransitionSummary.read(self.transitions.acknowledge(id, assertion(caller))))

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
        parsed = ParsedCtf.read(self.transitions.import_ctf(body.xml, assertion(caller)))
        transfer = Transfer(source_file="sha256:" + hashlib.sha256(body.xml.encode("utf-8")).hexdigest(),
                            from_school=parsed.from_school, to_school=parsed.to_school,
                            pupils=[{k: v for k, v in p.items() if k != "child_ref"} for p in parsed.pupils])
        counts = TransferCounts.read(self.transition_agencies(caller.org).import_transfer(transfer.wire(),
                                                                                          assertion(caller)))
        return {**sent(parsed), **sent(counts)}

    @api("GET", "/api/v1/transitions/imported", roles=SCHOOLS, query=ImportedQuery,
         summary="The transfer records the caller's school imported from Common Transfer Files")
    def imported_transfers(self, caller, body, query):
        _school_only(caller)
        return [sent(record) for record in ImportedRecord.read_many(
            self.transition_agencies(caller.org).imported_transfers(assertion(caller), query.child_ref))]
