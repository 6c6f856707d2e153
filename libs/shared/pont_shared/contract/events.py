"""The event catalogue: one payload model per event `type`.

This module is the one place the contract lives. Events on the shared exchange carry
`child_ref` and codes only — never names, dates of birth, UPNs, NHS numbers, addresses or
free text about a child (`tests/unit/test_events.py` checks every model). Personal details
travel only in `DisclosureDelivered`, addressed to one agency on its own routing key.
"""
from __future__ import annotations

import json
from datetime import date, datetime
from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import Field

from pont_shared.contract.envelope import DISCLOSURES_EXCHANGE, Payload


class Category(StrEnum):
    contact = "contact"
    education = "education"
    attendance = "attendance"
    aln = "aln"
    health_wellbeing = "health_wellbeing"
    safeguarding = "safeguarding"
    family_context = "family_context"


class Purpose(StrEnum):
    referral = "referral"
    appointment = "appointment"
    transition = "transition"
    team_around_family = "team_around_family"


class Basis(StrEnum):
    consent = "consent"
    safeguarding = "safeguarding"
    legal_obligation = "legal_obligation"


OrgId = str  # "<kind>:<code>", validated at the gateway


# --- consent -------------------------------------------------------------------------

class ConsentGranted(Payload):
    TYPE: ClassVar[str] = "pont.consent.granted.v1"
    consent_id: str
    child_ref: str
    recipients: list[OrgId]
    purposes: list[Purpose]
    categories: list[Category]
    expires_on: date | None = None


class ConsentWithdrawn(Payload):
    TYPE: ClassVar[str] = "pont.consent.withdrawn.v1"
    consent_id: str
    child_ref: str
    recipients: list[OrgId]
    action: Literal["restrict", "erase"] = "restrict"


class ConsentExpired(Payload):
    TYPE: ClassVar[str] = "pont.consent.expired.v1"
    consent_id: str
    child_ref: str
    recipients: list[OrgId]


class ConsentRequested(Payload):
    """The child's family is asked for consent (by a practitioner, or for a referral held for want of it)."""

    TYPE: ClassVar[str] = "pont.consent.requested.v1"
    request_id: str
    child_ref: str
    recipients: list[OrgId]
    purposes: list[Purpose]
    categories: list[Category]
    referral_id: str | None = None


class FamilyLinked(Payload):
    """A family member was linked to a child (no one named: the member stays in the consent service)."""

    TYPE: ClassVar[str] = "pont.consent.family_linked.v1"
    child_ref: str
    school: OrgId
    relationship: Literal["parent", "carer", "self"]


class FamilyExemptionChanged(Payload):
    """A DSL kept a disclosure from the family's view (`marked`), kept it on review, or `lifted` it."""

    TYPE: ClassVar[str] = "pont.consent.family_exemption.v1"
    disclosure_id: str
    child_ref: str
    org: OrgId
    decision: Literal["marked", "kept", "lifted"]
    review_on: date | None = None


class DisclosureRecorded(Payload):
    TYPE: ClassVar[str] = "pont.disclosure.recorded.v1"
    disclosure_id: str
    child_ref: str
    from_org: OrgId
    to_org: OrgId
    purpose: Purpose
    categories: list[Category]
    basis: Basis
    basis_ref: str


class LedgerAnchored(Payload):
    """The disclosure ledger's chain head: every agency link keeps it in its own database, so a
    ledger whose tail was dropped or that was re-chained is caught by verification. No personal data."""

    TYPE: ClassVar[str] = "pont.ledger.anchored.v1"
    seq: int
    hash: str
    at: datetime


# --- referrals -----------------------------------------------------------------------

class ReferralRaised(Payload):
    TYPE: ClassVar[str] = "pont.referral.raised.v1"
    referral_id: str
    child_ref: str
    from_org: OrgId
    to_org: OrgId
    service: str
    urgency: str


class ReferralHeld(Payload):
    TYPE: ClassVar[str] = "pont.referral.held.v1"
    referral_id: str
    child_ref: str
    to_org: OrgId
    missing_categories: list[Category]


class ReferralSent(Payload):
    TYPE: ClassVar[str] = "pont.referral.sent.v1"
    referral_id: str
    child_ref: str
    to_org: OrgId
    basis: Basis
    deadline: datetime


class _ReferralResponse(Payload):
    """An agency's (or the school's) step on a referral: codes only, no free text."""

    referral_id: str
    child_ref: str
    by_org: OrgId


class ReferralAccepted(_ReferralResponse):
    TYPE: ClassVar[str] = "pont.referral.accepted.v1"


class ReferralDeclined(_ReferralResponse):
    TYPE: ClassVar[str] = "pont.referral.declined.v1"


class ReferralClosed(_ReferralResponse):
    TYPE: ClassVar[str] = "pont.referral.closed.v1"


class ReferralWithdrawn(_ReferralResponse):
    TYPE: ClassVar[str] = "pont.referral.withdrawn.v1"


class ReferralOverdue(Payload):
    TYPE: ClassVar[str] = "pont.referral.overdue.v1"
    referral_id: str
    child_ref: str
    to_org: OrgId
    urgency: str
    deadline: datetime


# --- agency decisions ----------------------------------------------------------------

class AgencyDecided(Payload):
    """An agency's decision on something disclosed to it (accept, decline, close)."""

    TYPE: ClassVar[str] = "pont.agency.decided.v1"
    subject_kind: Literal["referral", "transition"]
    subject_id: str
    child_ref: str
    org: OrgId
    decision: Literal["accepted", "declined", "closed", "acknowledged"]
    by: str
    reason_code: str | None = None


# --- bookings ------------------------------------------------------------------------

class SessionScheduled(Payload):
    TYPE: ClassVar[str] = "pont.session.scheduled.v1"
    session_id: str
    site: OrgId
    room: str
    provider_org: OrgId
    service: str
    starts_at: datetime
    ends_at: datetime


class _AppointmentEvent(Payload):
    """Time and room of a pupil's appointment, never its reason."""

    appointment_id: str
    session_id: str
    child_ref: str
    site: OrgId
    room: str
    provider_org: OrgId
    starts_at: datetime
    ends_at: datetime


class AppointmentBooked(_AppointmentEvent):
    TYPE: ClassVar[str] = "pont.appointment.booked.v1"


class AppointmentCancelled(_AppointmentEvent):
    TYPE: ClassVar[str] = "pont.appointment.cancelled.v1"


class AppointmentAttended(_AppointmentEvent):
    TYPE: ClassVar[str] = "pont.appointment.attended.v1"


class AppointmentWasNotBrought(_AppointmentEvent):
    """A possible safeguarding signal: raised to the host school's DSL for review."""

    TYPE: ClassVar[str] = "pont.appointment.was_not_brought.v1"


# --- transitions ---------------------------------------------------------------------

class _TransitionEvent(Payload):
    transition_id: str
    child_ref: str
    from_school: OrgId
    to_school: OrgId


class TransitionPrepared(_TransitionEvent):
    TYPE: ClassVar[str] = "pont.transition.prepared.v1"


class TransitionSent(_TransitionEvent):
    TYPE: ClassVar[str] = "pont.transition.sent.v1"


class TransitionAcknowledged(_TransitionEvent):
    TYPE: ClassVar[str] = "pont.transition.acknowledged.v1"


class TransitionOverdue(_TransitionEvent):
    TYPE: ClassVar[str] = "pont.transition.overdue.v1"


# --- disclosures: personal data, addressed to one agency ------------------------------

class DisclosureDelivered(Payload):
    """What one agency is entitled to receive: only the allowed categories' content.

    Published to the disclosures exchange with the recipient organisation as routing key,
    so only that agency's queue receives it.
    """

    TYPE: ClassVar[str] = "pont.disclosure.delivered.v1"
    EXCHANGE: ClassVar[str] = DISCLOSURES_EXCHANGE
    PERSONAL: ClassVar[bool] = True
    disclosure_id: str
    child_ref: str
    to_org: OrgId
    from_org: OrgId
    purpose: Purpose
    subject_kind: str
    subject_id: str
    basis: Basis
    basis_ref: str
    content: dict[str, Any] = Field(default_factory=dict)

    def routing_key(self) -> str:
        return self.to_org


CATALOGUE: dict[str, type[Payload]] = {
    model.TYPE: model
    for model in (
        ConsentGranted, ConsentWithdrawn, ConsentExpired, ConsentRequested, FamilyLinked, FamilyExemptionChanged,
        DisclosureRecorded, LedgerAnchored,
        ReferralRaised, ReferralHeld, ReferralSent, ReferralAccepted, ReferralDeclined,
        ReferralClosed, ReferralWithdrawn, ReferralOverdue, AgencyDecided,
        SessionScheduled, AppointmentBooked, AppointmentCancelled, AppointmentAttended,
        AppointmentWasNotBrought, TransitionPrepared, TransitionSent, TransitionAcknowledged,
        TransitionOverdue, DisclosureDelivered,
    )
}


def json_schemas() -> dict[str, dict]:
    """JSON Schema of every event payload, keyed by event type."""
    return {event_type: model.model_json_schema() for event_type, model in CATALOGUE.items()}


def asyncapi() -> dict:
    """The catalogue as an AsyncAPI 2.6 document, generated from the models."""
    channels = {}
    for event_type, model in CATALOGUE.items():
        channels[event_type] = {
            "subscribe": {
                "message": {
                    "name": event_type,
                    "contentType": "application/json",
                    "payload": model.model_json_schema(),
                    "bindings": {"amqp": {"exchange": model.EXCHANGE}},
                }
            }
        }
    return {
        "asyncapi": "2.6.0",
        "info": {"title": "Pont events", "version": "1"},
        "defaultContentType": "application/json",
        "channels": channels,
    }


def main() -> None:
    print(json.dumps(asyncapi(), indent=2))


if __name__ == "__main__":
    main()
