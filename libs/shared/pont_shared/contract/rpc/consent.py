"""The consent service's RPC contract: what its callers send and what it answers.

- `create_agreement(agreement: NewAgreement, caller) -> AgreementView`: the gateway's request body, passed on
  as it is; `approve_agreement`, `revoke_agreement` answer an `AgreementView`, `list_agreements` a list of them.
- `record_consent(consent: RecordConsent, caller, idempotency_key) -> ConsentRecorded`: the consent as given
  (`NewConsent`, the gateway's request body) without the child's names, which are not consent's to keep;
  `withdraw_consent(consent_id, reason, caller, erase) -> ConsentStatus`.
- `decide(DecideRequest) -> DecideReply` and `decide_many([DecideRequest]) -> [DecideReply]`: may these
  categories about a child go from one organisation to another? Nothing is recorded.
- `share(ShareRequest) -> ShareReply` and `share_many([ShareRequest]) -> [ShareReply]`: decide, and record
  the disclosure of what is allowed in the ledger (`disclosure_id`, None when nothing is).
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import ConfigDict, Field, field_validator

from pont_shared.contract.events import Basis, Category, Purpose
from pont_shared.contract.rpc import ActsForCaller, Reply, Request
from pont_shared.contract.rpc.types import Child, ChildRef, Id, Name, OrgId, Text
from pont_shared.identity import upn_problem

MAX_BATCH = 1000  # requests in one decide_many / share_many


class GivenBy(Request):
    name: Name
    relationship: Literal["parent", "carer", "self"]


class NewAgreement(Request):
    """An information-sharing agreement as proposed (POST /api/v1/agreements)."""

    parties: list[OrgId] = Field(min_length=2)
    purposes: list[Purpose] = Field(min_length=1)
    categories: list[Category] = Field(min_length=1)
    valid_from: date
    valid_to: date


class _ConsentGiven(Request):
    given_by: GivenBy
    competence_assessed: bool = False
    recipients: list[OrgId] = Field(min_length=1)
    purposes: list[Purpose] = Field(min_length=1)
    categories: list[Category] = Field(min_length=1)
    expires_on: date | None = None
    evidence: Literal["written", "verbal", "portal"]


class NewConsent(_ConsentGiven):
    """A consent as a school records it (POST /api/v1/consents), naming the child."""

    child: Child

    def to_record(self) -> RecordConsent:
        """The request to the consent service: the child by UPN and date of birth only."""
        return RecordConsent.model_validate({**self.model_dump(exclude={"child"}),
                                             "child": self.child.model_dump(include={"upn", "date_of_birth"})})


class ConsentChild(Request):
    """The child a consent is about, as far as consent needs: the UPN (its `child_ref` is derived from it)
    and the date of birth (a young person's own consent depends on their age). Other details a caller
    sends (names) are not consent's to keep: they are dropped, not refused."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    upn: str
    date_of_birth: date | None = None

    @field_validator("upn")
    @classmethod
    def _valid_upn(cls, value: str) -> str:
        problem = upn_problem(value)
        if problem:
            raise ValueError(problem)
        return value


class RecordConsent(_ConsentGiven):
    """A consent as the consent service records it."""

    child: ConsentChild


class SharingQuestion(Request):
    """May `categories` about a child go to `to_org` for `purpose` (POST /api/v1/sharing-decisions)?

    `basis` asserts a statutory basis (a DSL's, with `justification`) instead of consent.
    """

    child_ref: ChildRef
    to_org: OrgId
    purpose: Purpose
    categories: list[Category] = Field(min_length=1)
    basis: Basis | None = None
    justification: Text | None = None


class AgreementView(Reply):
    """An agreement and where it stands: `status` proposed, in_force, expired or revoked; `awaiting` the parties
    whose approval it still needs."""

    id: str
    status: str
    parties: list[str]
    purposes: list[Purpose]
    categories: list[Category]
    valid_from: date
    valid_to: date
    proposed_by_org: str = ""
    approved_by: list[str]
    awaiting: list[str]
    revoked_at: datetime | None = None


class ConsentRecorded(Reply):
    id: str
    child_ref: str
    status: str


class ConsentStatus(Reply):
    id: str
    status: str


class ConsentGivenBy(Reply):
    relationship: str


class ConsentView(Reply):
    """A consent as its holders see it (`list_consents`): never who gave it by name."""

    id: str
    child_ref: str
    status: str
    given_by: ConsentGivenBy
    competence_assessed: bool | None = None
    recipients: list[str]
    purposes: list[str]
    categories: list[str]
    evidence: str
    expires_on: str | None = None
    recorded_by_org: str
    recorded_by: str
    recorded_at: str
    status_changed_at: str | None = None


class LedgerEntryView(Reply):
    """One ledger entry as the caller's organisation may read it (`disclosures`)."""

    id: str
    seq: int
    kind: str
    at: str
    from_org: str | None = None
    to_org: str | None = None
    purpose: str | None = None
    categories: list[str]
    basis: str | None = None
    basis_ref: str | None = None
    by: str | None = None
    flagged_for_review: bool
    subject_kind: str | None = None
    subject_id: str | None = None
    justification: str | None = None
    recipients: list[str] = []


class LedgerHead(Reply):
    seq: int
    hash: str


class LedgerBreak(Reply):
    seq: int
    reason: str


class LedgerVerification(Reply):
    """The whole chain recomputed and compared with the anchors the agency links hold (`verify_ledger`)."""

    intact: bool
    entries: int
    head: LedgerHead | None = None
    unkeyed_entries: int
    anchors_checked: int
    first_broken: LedgerBreak | None = None


class DecideRequest(SharingQuestion, ActsForCaller):
    """The question as `caller` asks it, for their organisation `from_org`."""

    from_org: OrgId


class ShareRequest(DecideRequest):
    """A decision whose allowed categories are disclosed now, about the record the disclosure is for.

    Under one `idempotency_key` a request asked again is answered as the first time it shared
    something, and the disclosure is in the ledger once.
    """

    subject_kind: Literal["referral", "transition", "appointment"]
    subject_id: Id
    idempotency_key: Id | None = None


class CategoryDecision(Reply):
    category: Category
    allowed: bool
    basis: Basis | None = None
    basis_ref: str | None = None
    reason: str


class DecideReply(Reply):
    """The decision per category, in the order asked; a statutory basis is flagged for review."""

    decisions: list[CategoryDecision]
    flagged_for_review: bool

    @property
    def allowed(self) -> list[CategoryDecision]:
        return [decision for decision in self.decisions if decision.allowed]


class ShareReply(DecideReply):
    """The decision and the ledger entry recording the disclosure of the allowed categories (None: nothing was)."""

    disclosure_id: str | None
