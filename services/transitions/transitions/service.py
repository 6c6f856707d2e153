"""The transitions service: entrypoints only."""
from __future__ import annotations

from pathlib import Path

from pont_shared.contract.errors import Conflict, Forbidden, Invalid, NotFound
from pont_shared.contract.events import ConsentExpired, ConsentWithdrawn
from pont_shared.contract.rpc.transitions import NewTransitions, ParsedCtf
from pont_shared.messaging.consumer import handles
from pont_shared.messaging.dependencies import ChildRefs, Clock, UnitOfWorkProvider, every
from pont_shared.messaging.rpc import RpcProxy, rpc
from pont_shared.operations.migrations import migrator
from pont_shared.operations.ops import OpsEndpoints

from . import ctf, handlers
from .dependencies import Config, ConsentSharing, OpenInvolvement, configured_timer
from .orm import metadata, tables

MIGRATIONS = Path(__file__).parent / "migrations"
EXPECTED = (NotFound, Conflict, Forbidden, Invalid)


class TransitionsService(OpsEndpoints):
    """Year 6 transition records: prepare, send, acknowledge, overdue, CTF."""

    name = "transitions"

    uow = UnitOfWorkProvider(metadata, tables, prepare=migrator(MIGRATIONS))
    consent = RpcProxy("consent")
    referrals = RpcProxy("referrals")
    clock = Clock()
    config = Config()
    child_ref = ChildRefs()

    @rpc(expected_exceptions=EXPECTED)
    def prepare(self, request: dict, caller: dict, idempotency_key: str | None = None) -> list[dict]:
        """A cohort's records (per pupil: id, child_ref, status, included, withheld)."""
        command = handlers.command_from(NewTransitions.parse(request), caller, self.child_ref)
        idempotency = (idempotency_key, request) if idempotency_key else None
        return handlers.prepare_cohort(self.uow, ConsentSharing(self.consent), command, self.clock(),
                                       self.config.ack_period, idempotency,
                                       OpenInvolvement(self.referrals, self.config.referrals_timeout_seconds))

    @rpc(expected_exceptions=EXPECTED)
    def send(self, transition_id: str, caller: dict) -> dict:
        return handlers.send(self.uow, ConsentSharing(self.consent), transition_id, caller, self.clock(),
                             self.config.ack_period)

    @rpc(expected_exceptions=EXPECTED)
    def acknowledge(self, transition_id: str, caller: dict) -> dict:
        return handlers.acknowledge(self.uow, [transition_id], caller, self.clock())[0]

    @rpc(expected_exceptions=EXPECTED)
    def acknowledge_many(self, transition_ids: list[str], caller: dict) -> list[dict]:
        return handlers.acknowledge(self.uow, transition_ids, caller, self.clock())

    @rpc(expected_exceptions=EXPECTED)
    def inbox(self, caller: dict, status: str | None = None) -> list[dict]:
        return handlers.inbox(self.uow, caller, status)

    @rpc(expected_exceptions=EXPECTED)
    def sent(self, caller: dict, status: str | None = None, to_school: str | None = None) -> list[dict]:
        """The sending school's own records with their receipt state."""
        return handlers.sent_by(self.uow, caller, status, to_school)

    @rpc(expected_exceptions=EXPECTED)
    def get(self, transition_id: str, caller: dict) -> dict:
        return handlers.get(self.uow, transition_id, caller)

    @rpc(expected_exceptions=EXPECTED)
    def ctf(self, transition_id: str, caller: dict) -> dict:
        """{file_name, xml, pupils} for one record."""
        return handlers.ctf_export(self.uow, caller, self.clock(), transition_ids=[transition_id])

    @rpc(expected_exceptions=EXPECTED)
    def cohort_ctf(self, from_school: str, to_school: str, caller: dict) -> dict:
        """{file_name, xml, pupils} for every record between two schools the caller may see."""
        return handlers.ctf_export(self.uow, caller, self.clock(), from_school=from_school, to_school=to_school)

    @rpc(expected_exceptions=EXPECTED)
    def import_ctf(self, xml: str, caller: dict) -> dict:
        """A CTF parsed back into pupils' sections (validated against the schema first)."""
        try:
            imported = ctf.import_(xml.encode("utf-8"))
        except ctf.CtfInvalid as exc:
            raise Invalid("the file is not a valid CTF", [{"field": "xml", "message": str(exc)[:500]}]) from exc
        for pupil in imported["pupils"]:
            pupil["child_ref"] = self.child_ref(pupil["identifiers"]["upn"])
        return ParsedCtf.model_validate(imported).wire()

    @handles(ConsentWithdrawn)
    def on_consent_withdrawn(self, event):
        handlers.consent_ended(self.uow, event.payload(ConsentWithdrawn), self.clock())

    @handles(ConsentExpired)
    def on_consent_expired(self, event):
        handlers.consent_ended(self.uow, event.payload(ConsentExpired), self.clock())

    @configured_timer(interval=60)
    def check_overdue(self):
        handlers.mark_overdue(self.uow, self.clock())

    @every(interval=30, config_key="PONT_TRANSITIONS_UNSENT_SECONDS")
    def send_unsent(self):
        """Records whose send a crash or a consent outage left between asking consent and recording it."""
        handlers.send_unsent(self.uow, ConsentSharing(self.consent), self.clock(), self.config.ack_period,
                             self.config.unsent_after)
