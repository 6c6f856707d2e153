"""An agency's own copy of what was disclosed to it, and the rules it honours. Plain Python."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

RECEIVED = "received"
ACCEPTED = "accepted"
DECLINED = "declined"
CLOSED = "closed"
ACKNOWLEDGED = "acknowledged"
BOOKED = "booked"   # a pupil appointment's first state; cancelled and was_not_brought are final

# a copy's content keeps its parts under one of these keys, named as its `basis_refs` names them
PART_KEYS = ("sections", "categories")
WITHHELD_KEY = "withheld_parts"   # part → "restricted" | "erased", kept in the copy, never served as content

# decision -> the states it may follow
_NEXT = {
    "referral": {ACCEPTED: (RECEIVED,), DECLINED: (RECEIVED, ACCEPTED), CLOSED: (ACCEPTED, DECLINED)},
    "transition": {ACKNOWLEDGED: (RECEIVED,)},
}

DECLINE_CODES = ("not_eligible", "already_involved", "insufficient_information", "no_capacity", "other")
CLOSE_CODES = ("support_completed", "referred_on", "no_further_action", "family_disengaged", "other")


class DecisionRefused(Exception):
    """The decision does not follow from the item's current state; args: (field, message)."""

    def __init__(self, field_name: str, message: str):
        super().__init__(field_name, message)
        self.field = field_name
        self.message = message


@dataclass
class AgencyCopy:
    """One disclosure as the agency holds it."""

    disclosure_id: str
    subject_kind: str
    subject_id: str
    child_ref: str
    from_org: str
    purpose: str
    basis: str
    basis_ref: str
    content: dict | None
    received_at: datetime
    status: str = RECEIVED
    restricted_at: datetime | None = None
    restriction: str | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    reason_code: str | None = None
    note: str | None = None
    history: list[dict] = field(default_factory=list)

    def basis_refs(self) -> set[str]:
        """Every consent (or other basis reference) this copy was disclosed under."""
        # a copy resting on several consents lists them per category in `content.basis_refs`;
        # copies stored before that carry them joined in `basis_ref` ("A,B")
        refs = {ref for ref in self.basis_ref.split(",") if ref}
        for part_refs in self._refs_by_part().values():
            refs.update(part_refs)
        return refs

    def rests_on(self, consent_id: str) -> bool:
        return consent_id in self.basis_refs()

    def _refs_by_part(self) -> dict[str, set[str]]:
        """Part (a category, or a transition's section) → the consents it was disclosed on."""
        by_part = (self.content or {}).get("basis_refs") or {}
        return {part: {r for r in ([refs] if isinstance(refs, str) else refs or []) if r}
                for part, refs in by_part.items()}

    def _parts(self) -> dict | None:
        """The content's parts, named as `basis_refs` names them: `sections` or `categories`."""
        content = self.content or {}
        return next((content[key] for key in PART_KEYS if isinstance(content.get(key), dict)), None)

    def honour_withdrawal(self, consent_id: str, action: str, at: datetime) -> bool:
        """Restrict (or erase) what of this copy rests on the withdrawn consent; whether anything.

        When the copy names a basis per part and other parts rest on other consents, only the
        parts that rested on this one are withheld (erase: deleted); otherwise the whole copy."""
        if not self.rests_on(consent_id):
            return False
        parts = self._parts()
        ending = {part for part, refs in self._refs_by_part().items() if consent_id in refs}
        withheld = dict((self.content or {}).get(WITHHELD_KEY) or {})
        remaining = set(parts or ()) - ending - set(withheld)
        if parts is None or not ending or not remaining:
            self.restrict(at, action)
            return True
        reason = "erased" if action == "erase" else "restricted"
        for part in ending:
            if withheld.get(part) != "erased":
                withheld[part] = reason
        kept = {k: v for k, v in parts.items() if not (k in withheld and withheld[k] == "erased")}
        key = next(k for k in PART_KEYS if isinstance((self.content or {}).get(k), dict))
        self.content = {**self.content, key: kept, WITHHELD_KEY: withheld}
        return True

    def restrict(self, at: datetime, action: str) -> None:
        """Consent was withdrawn: the details are no longer served (erase: no longer held); the fact stays."""
        self.restricted_at = self.restricted_at or at
        self.restriction = "erase" if action == "erase" or self.restriction == "erase" else "restrict"
        if self.restriction == "erase":
            self.content = None

    def decide(self, decision: str, at: datetime, by: str, *, reason_code: str | None = None,
               note: str | None = None) -> None:
        allowed_from = _NEXT.get(self.subject_kind, {}).get(decision)
        if allowed_from is None:
            raise DecisionRefused("decision", f"{decision} is not a decision on a {self.subject_kind}")
        if self.status not in allowed_from:
            raise DecisionRefused("status", f"a {self.subject_kind} that is {self.status} cannot be {decision}")
        self.status = decision
        self.decided_by, self.decided_at = by, at
        self.reason_code, self.note = reason_code, note
        self.history.append({"status": decision, "at": at.isoformat(), "by": by, "code": reason_code})

    def view(self, roles: frozenset[str] = frozenset()) -> dict:
        """What the inbox serves: never the content of a restricted copy, nor of one meant
        for a role (e.g. a child-protection file for the DSL) the reader does not hold."""
        content = self.content or {}
        role_only = content.get("restricted_to_role")
        withheld = self.restricted_at is not None or (role_only is not None and role_only not in roles)
        parts_withheld = content.get(WITHHELD_KEY) or {}
        served = None if withheld else {
            k: ({p: d for p, d in v.items() if p not in parts_withheld} if k in PART_KEYS and isinstance(v, dict)
                else v)
            for k, v in content.items() if k not in ("basis_refs", WITHHELD_KEY)}
        return {
            "id": self.subject_id, "kind": self.subject_kind, "disclosure_id": self.disclosure_id,
            "child_ref": self.child_ref, "from_org": self.from_org, "purpose": self.purpose, "basis": self.basis,
            "received_at": self.received_at, "status": self.status, "restricted": self.restricted_at is not None,
            # why: the consent it rested on ended (restricted: details kept, not served) or erase asked (erased)
            "restriction": {"restrict": "restricted", "erase": "erased"}.get(self.restriction or ""),
            # parts withheld because the consent they alone rested on ended, the rest still served
            "withheld": [{"part": p, "reason": r} for p, r in sorted(parts_withheld.items())],
            "content": served, "restricted_to_role": role_only, "history": self.history,
        }


@dataclass
class PupilAppointment:
    """The host school's view of a pupil's appointment on its site: when and where, never why."""

    appointment_id: str
    child_ref: str
    room: str
    provider_org: str
    starts_at: datetime
    ends_at: datetime
    status: str = BOOKED
