"""An organisation's agency_link's RPC contract (`agency_link_<org>`: one instance per organisation,
answering from that organisation's own store). Each method takes the caller (the gateway's
assertion), who must be of that organisation:

- `inbox(kind, caller)` → [`CopyView`]: what was disclosed to the organisation (`kind`: `referral`,
  `transition`, or None for both);
- `decide(request: AgencyDecision, caller)` → `DecisionView`: accept, decline or close a referral
  (acknowledge a transition), recorded in its own store and told to Pont as codes only;
- `appointments(caller, child_ref=None, day=None)` → [`PupilAppointmentView`]: a host school's pupils'
  appointments on its site (when and where, never why), one pupil's or one day's (`YYYY-MM-DD`, Europe/London);
- `dsl_reviews(caller)` → [`ReviewView`]: the DSL's review queue (was-not-brought appointments);
- `ledger_anchor(ledger)` → `AnchorView` or None: the latest head of a ledger this agency kept
  (no personal data, so no caller).
"""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import StringConstraints

from pont_shared.contract.rpc import Reply, Request
from pont_shared.contract.rpc.types import Id, Text

Code = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class AgencyDecision(Request):
    """The recipient's decision on an item of its inbox. A decline's reason and a close's outcome
    stay in the organisation's own store; only `reason_code` is told to Pont."""

    subject_id: Id
    decision: Literal["accepted", "declined", "closed", "acknowledged"]
    subject_kind: Literal["referral", "transition"] = "referral"
    reason: Text | None = None
    outcome: Text | None = None
    reason_code: Code | None = None


class DecisionView(Reply):
    id: str
    status: str


class CopyView(Reply):
    """One copy in the organisation's store, as its inbox serves it: never the content of a
    restricted copy, nor of one meant for a role the reader does not hold."""

    id: str
    kind: str
    disclosure_id: str
    child_ref: str
    from_org: str
    purpose: str
    basis: str
    received_at: datetime
    status: str
    restricted: bool
    restriction: str | None = None
    withheld: list[dict] = []
    content: dict | None = None
    restricted_to_role: str | None = None
    history: list[dict] = []


class PupilAppointmentView(Reply):
    appointment_id: str
    child_ref: str
    room: str
    provider_org: str
    starts_at: datetime
    ends_at: datetime
    status: str


class ReviewView(Reply):
    id: int
    kind: str
    appointment_id: str
    child_ref: str
    provider_org: str
    starts_at: datetime
    raised_at: datetime
    status: str


class AnchorView(Reply):
    seq: int
    hash: str
