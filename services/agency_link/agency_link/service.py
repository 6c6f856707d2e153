"""agency_link: one instance per organisation, each with its own database and its own queues."""
from __future__ import annotations

from pathlib import Path

from pont_shared.contract.errors import Conflict, Forbidden, Invalid, NotFound
from pont_shared.contract.events import (
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentWasNotBrought,
    ConsentExpired,
    ConsentWithdrawn,
    DisclosureDelivered,
    LedgerAnchored,
)
from pont_shared.contract.rpc.agency_link import AgencyDecision
from pont_shared.contract.rpc.transitions import Transfer
from pont_shared.messaging.consumer import handles
from pont_shared.messaging.dependencies import ChildRefs, Clock, UnitOfWorkProvider
from pont_shared.messaging.rpc import rpc
from pont_shared.operations.migrations import migrator
from pont_shared.operations.ops import OpsEndpoints

from . import anchors, handlers
from .dependencies import OrgName
from .domain import BOOKED
from .orm import metadata, tables

MIGRATIONS = Path(__file__).parent / "migrations"
EXPECTED = (NotFound, Conflict, Forbidden, Invalid)


class AgencyLinkService(OpsEndpoints):
    """The agency's own copy of what was disclosed to it, its inbox, and its decisions.

    Run as `--name agency_link_<safe org> --org <org>`; the org is `container.config["org"]`.
    """

    name = "agency_link"
    uow = UnitOfWorkProvider(metadata, tables, prepare=migrator(MIGRATIONS))

    clock = Clock()
    org = OrgName()
    child_ref = ChildRefs()

    @handles(LedgerAnchored)
    def on_ledger_anchored(self, event):
        anchors.keep(self.uow, event.source, event.payload(LedgerAnchored), self.clock())

    @rpc(expected_exceptions=EXPECTED)
    def ledger_anchor(self, ledger: str) -> dict | None:
        """The latest head of `ledger` (e.g. `/pont/consent`) this agency kept; no personal data, so no caller."""
        anchor = anchors.latest(self.uow, str(ledger))
        return anchor and anchor.wire()

    @handles(DisclosureDelivered, routing_key="{org}")
    def on_disclosure(self, event):
        handlers.store_disclosure(self.uow, event.payload(DisclosureDelivered), self.org, self.clock())

    @rpc(expected_exceptions=EXPECTED)
    def inbox(self, kind: str | None, caller: dict) -> list:
        return [copy.wire() for copy in handlers.inbox(self.uow, self.org, caller, kind)]

    @rpc(expected_exceptions=EXPECTED)
    def decide(self, request: dict, caller: dict) -> dict:
        return handlers.decide(self.uow, self.org, caller, AgencyDecision.parse(request), clock=self.clock).wire()

    @handles(ConsentWithdrawn)
    def on_consent_withdrawn(self, event):
        handlers.on_consent_withdrawn(self.uow, event.payload(ConsentWithdrawn), self.org, self.clock())

    @handles(ConsentExpired)
    def on_consent_expired(self, event):
        handlers.on_consent_withdrawn(self.uow, event.payload(ConsentExpired), self.org, self.clock())

    @handles(AppointmentBooked)
    def on_appointment_booked(self, event):
        handlers.on_appointment(self.uow, event.payload(AppointmentBooked), BOOKED, self.org, self.clock())

    @handles(AppointmentCancelled)
    def on_appointment_cancelled(self, event):
        handlers.on_appointment(self.uow, event.payload(AppointmentCancelled), "cancelled", self.org, self.clock())

    @handles(AppointmentWasNotBrought)
    def on_was_not_brought(self, event):
        handlers.on_appointment(self.uow, event.payload(AppointmentWasNotBrought), "was_not_brought", self.org,
                                self.clock())

    @rpc(expected_exceptions=EXPECTED)
    def appointments(self, caller: dict, child_ref: str | None = None, day: str | None = None) -> list:
        return [item.wire() for item in handlers.pupil_appointments(self.uow, self.org, caller, child_ref, day)]

    @rpc(expected_exceptions=EXPECTED)
    def dsl_reviews(self, caller: dict) -> list:
        return [item.wire() for item in handlers.dsl_review_items(self.uow, self.org, caller)]

    @rpc(expected_exceptions=EXPECTED)
    def import_transfer(self, transfer: dict, caller: dict) -> dict:
        """A parsed Common Transfer File into this school's own store."""
        return handlers.import_transfer(self.uow, self.org, caller, Transfer.parse(transfer, "transfer."),
                                        child_ref_of=self.child_ref, clock=self.clock).wire()

    @rpc(expected_exceptions=EXPECTED)
    def imported_transfers(self, caller: dict, child_ref: str | None = None) -> list:
        return [record.wire() for record in handlers.imported(self.uow, self.org, caller, child_ref)]
