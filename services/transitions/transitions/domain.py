"""Transition records: which section travels on which basis, and a record's life.

Plain Python: no nameko, SQLAlchemy or pydantic. A record is prepared for one pupil, sent
to the receiving school (only the sections a sharing decision allows), acknowledged by
that school, or goes overdue when the receipt does not come in time.

Child protection (decision, documented in the service README section of the report):
the section moves only DSL to DSL. It is asked for on the `legal_obligation` basis and
only when the person sending holds both `transition_lead` and `dsl`; otherwise it is
withheld and listed as withheld. It travels as its own disclosure, addressed to the
receiving school's DSL (`restricted_to_role: dsl`), so its ledger entry carries the
`legal_obligation` basis alone, and the receiving school's non-DSL staff never see it.
It is never written into a Common Transfer File.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

PURPOSE = "transition"

# section → the sharing category it is decided under
SECTION_CATEGORY: dict[str, str] = {
    "identifiers": "education",
    "attendance": "attendance",
    "aln": "aln",
    "wellbeing": "health_wellbeing",
    "agency_involvement": "family_context",
    "child_protection": "safeguarding",
}
SECTIONS = tuple(SECTION_CATEGORY)
CONSENT_SECTIONS = tuple(s for s in SECTIONS if s != "child_protection")
CHILD_PROTECTION = "child_protection"
CP_BASIS = "legal_obligation"
CP_JUSTIFICATION = ("The child-protection file transfers with the pupil to the receiving school's "
                    "designated safeguarding lead (Keeping learners safe, legal obligation).")
CP_ROLES = frozenset({"dsl", "transition_lead"})

PREPARED, SENT, OVERDUE, ACKNOWLEDGED = "prepared", "sent", "overdue", "acknowledged"
RECEIVED_STATUSES = (SENT, OVERDUE, ACKNOWLEDGED)
STATUSES = (PREPARED, *RECEIVED_STATUSES)

# why a section that travelled is no longer served: the consent it rested on ended
WITHDRAWN, EXPIRED, ERASED = "withdrawn", "expired", "erased"
RESTRICT, ERASE = "restrict", "erase"


class NotPermitted(Exception):
    """The caller may not do this to this record."""


class NotVisible(Exception):
    """The record does not exist for this caller (another organisation's)."""


class WrongState(Exception):
    """The record is not in a state that allows this step."""


@dataclass(frozen=True)
class Withheld:
    section: str
    category: str
    reason: str

    def as_dict(self) -> dict:
        return {"section": self.section, "category": self.category, "reason": self.reason}


@dataclass(frozen=True)
class Transition:
    """One pupil's record from a sending to a receiving school."""

    id: str
    child_ref: str
    from_school: str
    to_school: str
    prepared_by: str
    prepared_at: datetime
    sections: dict                      # everything the sending school supplied, by section
    status: str = PREPARED
    included: tuple[str, ...] = ()
    withheld: tuple[Withheld, ...] = ()
    sent_at: datetime | None = None
    due_at: datetime | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    overdue_at: datetime | None = None
    disclosure_ids: tuple[str, ...] = field(default=())
    # section → the consent ids it was disclosed on (empty for a legal-obligation section)
    section_basis: dict = field(default_factory=dict)
    # a send committed but not yet recorded: when, and the sender (sub, org, roles) consent is asked for
    send_requested_at: datetime | None = None
    send_requested_by: dict | None = None

    # -- who may see it ---------------------------------------------------------------

    def visible_to(self, org: str) -> bool:
        return org == self.from_school or (org == self.to_school and self.status in RECEIVED_STATUSES)

    def check_sender(self, org: str) -> None:
        if org != self.from_school:
            raise NotVisible(self.id)

    def check_receiver(self, org: str) -> None:
        if org != self.to_school or self.status not in RECEIVED_STATUSES:
            raise NotVisible(self.id)

    # -- steps --------------------------------------------------------------------------

    def decided(self, outcome: SectionOutcome) -> Transition:
        return replace(self, included=outcome.included, withheld=outcome.withheld)

    def request_send(self, now: datetime, sender: dict) -> Transition:
        """The first of a send's two steps: the record still prepared, and invisible to the receiving
        school, until consent has answered and `send` records what it allowed. A send requested
        and never completed (a crash, a consent outage) is completed by whoever finds it."""
        if self.status != PREPARED:
            raise WrongState(f"a {self.status} record cannot be sent again")
        if self.awaiting_send:
            return self
        return replace(self, send_requested_at=now, send_requested_by=dict(sender))

    @property
    def awaiting_send(self) -> bool:
        return self.status == PREPARED and self.send_requested_at is not None

    def send(self, outcome: SectionOutcome, now: datetime, period: timedelta,
             disclosure_ids: tuple[str, ...]) -> Transition:
        if self.status != PREPARED:
            raise WrongState(f"a {self.status} record cannot be sent again")
        return replace(self, included=outcome.included, withheld=outcome.withheld, status=SENT, sent_at=now,
                       due_at=now + period, disclosure_ids=disclosure_ids, section_basis=outcome.basis(),
                       send_requested_at=None, send_requested_by=None)

    def resting_on(self, consent_id: str) -> tuple[str, ...]:
        """The sections that travelled on this consent (a section disclosed on consents A and B
        rests on both, and withdrawing either ends it: it was disclosed on the pair, not on one)."""
        return tuple(s for s, refs in self.section_basis.items() if consent_id in refs)

    def consent_ended(self, consent_id: str, why: str, action: str = RESTRICT) -> Transition:
        """The consent `consent_id` was withdrawn or expired: the sections that rested on it are
        withheld from now on, with `why` as the reason; with `erase`, their content is deleted
        too (the record stays as a tombstone: id, child, when, the reason `erased`)."""
        resting = self.resting_on(consent_id)
        if action == ERASE:
            ended = tuple(s for s in resting if s in self.sections)
        else:
            ended = tuple(s for s in resting if s in self.included)
        if not ended:
            return self
        reason = ERASED if action == ERASE else why
        withheld = tuple(w for w in self.withheld if w.section not in ended) + tuple(
            Withheld(s, SECTION_CATEGORY[s], reason) for s in ended)
        sections = {k: v for k, v in self.sections.items() if k not in ended} if action == ERASE else self.sections
        return replace(self, included=tuple(s for s in self.included if s not in ended), withheld=withheld,
                       sections=sections)

    def acknowledge(self, now: datetime, by: str) -> Transition:
        if self.status == ACKNOWLEDGED:
            return self  # a second receipt changes nothing
        if self.status not in (SENT, OVERDUE):
            raise WrongState(f"a {self.status} record cannot be acknowledged")
        return replace(self, status=ACKNOWLEDGED, acknowledged_at=now, acknowledged_by=by)

    def is_overdue(self, now: datetime) -> bool:
        return self.status == SENT and self.due_at is not None and now >= self.due_at

    def go_overdue(self, now: datetime) -> Transition:
        if not self.is_overdue(now):
            raise WrongState("this record is not past its acknowledgement period")
        return replace(self, status=OVERDUE, overdue_at=now)

    # -- what the receiving school sees -------------------------------------------------

    def included_content(self, *, for_dsl: bool) -> dict:
        """Included sections; child protection only for a DSL of the receiving school."""
        return {name: self.sections[name] for name in self.included
                if name in self.sections and (name != CHILD_PROTECTION or for_dsl)}


@dataclass(frozen=True)
class SectionOutcome:
    """Which supplied sections may travel, the rest withheld with the reason."""

    included: tuple[str, ...]
    withheld: tuple[Withheld, ...]
    main_decisions: tuple[dict, ...] = ()   # allowed consent-category decisions
    cp_decision: dict | None = None         # the allowed child-protection decision

    def basis(self) -> dict[str, list[str]]:
        """Each included section → the consent ids the consent service named for its category."""
        by_category = {d["category"]: _consent_refs(d) for d in self.main_decisions}
        return {s: by_category.get(SECTION_CATEGORY[s], []) for s in self.included if s != CHILD_PROTECTION}


def _consent_refs(decision: dict) -> list[str]:
    if decision.get("basis") != "consent":
        return []
    refs = decision.get("basis_refs") or [decision.get("basis_ref")]
    return sorted({ref for ref in refs if ref})


@dataclass(frozen=True)
class SharingQuestion:
    """What to ask the consent service for one record: consent sections, and child protection."""

    categories: tuple[str, ...]
    ask_child_protection: bool
    cp_withheld: Withheld | None


def question_for(sections: dict, caller_roles: frozenset[str]) -> SharingQuestion:
    """The categories to ask about, given the supplied sections and who is sending."""
    categories = tuple(dict.fromkeys(SECTION_CATEGORY[s] for s in CONSENT_SECTIONS if s in sections))
    wants_cp = CHILD_PROTECTION in sections
    may_cp = CP_ROLES <= caller_roles
    cp_withheld = None
    if wants_cp and not may_cp:
        cp_withheld = Withheld(CHILD_PROTECTION, SECTION_CATEGORY[CHILD_PROTECTION],
                               "the child-protection section moves only from a DSL who is also the "
                               "transition lead, to the receiving school's DSL")
    return SharingQuestion(categories, wants_cp and may_cp, cp_withheld)


def outcome_of(sections: dict, question: SharingQuestion, main: list[dict] | None,
               cp: list[dict] | None) -> SectionOutcome:
    """Apply the consent service's per-category decisions to the supplied sections."""
    by_category = {d["category"]: d for d in (main or [])}
    included, withheld, allowed = [], [], {}
    for section in CONSENT_SECTIONS:
        if section not in sections:
            continue
        decision = by_category.get(SECTION_CATEGORY[section])
        if decision is not None and decision.get("allowed"):
            included.append(section)
            allowed[decision["category"]] = decision
        else:
            reason = decision.get("reason") if decision else "no sharing decision for this category"
            withheld.append(Withheld(section, SECTION_CATEGORY[section], reason or "not allowed"))
    cp_allowed = None
    if question.cp_withheld is not None:
        withheld.append(question.cp_withheld)
    elif question.ask_child_protection:
        decision = next((d for d in (cp or []) if d["category"] == SECTION_CATEGORY[CHILD_PROTECTION]), None)
        if decision is not None and decision.get("allowed") and decision.get("basis") == CP_BASIS:
            included.append(CHILD_PROTECTION)
            cp_allowed = decision
        else:
            withheld.append(Withheld(CHILD_PROTECTION, SECTION_CATEGORY[CHILD_PROTECTION],
                                     (decision or {}).get("reason") or "no legal-obligation basis"))
    return SectionOutcome(tuple(included), tuple(withheld), tuple(allowed.values()), cp_allowed)


def involvement_from_referrals(open_referrals: list[dict]) -> list[dict]:
    """The referrals service's open referrals of a pupil, in the `agency_involvement` section's shape."""
    return [{"agency": r["to_org"], "service": r["service"], "status": r["status"],
             **({"since": r["since"]} if r.get("since") else {}), "source": "referrals"}
            for r in open_referrals]


def delivery_content(transition: Transition, outcome: SectionOutcome) -> tuple[dict | None, dict | None]:
    """The disclosures' content: consent sections in one, child protection (DSL only) in another."""
    common = {"transition_id": transition.id, "from_school": transition.from_school,
              "to_school": transition.to_school}
    main_sections = {s: transition.sections[s] for s in outcome.included if s != CHILD_PROTECTION}
    main = None
    if main_sections:
        main = {**common, "sections": main_sections,
                "withheld": [w.as_dict() for w in outcome.withheld if w.section != CHILD_PROTECTION]}
    cp = None
    if CHILD_PROTECTION in outcome.included:
        cp = {**common, "sections": {CHILD_PROTECTION: transition.sections[CHILD_PROTECTION]},
              "restricted_to_role": "dsl"}
    return main, cp


def school_code(org: str) -> tuple[str, str]:
    """(LA, establishment) of a school org id `school:LLLEEEE` (the Welsh LAEstab number)."""
    kind, _, code = org.partition(":")
    if kind != "school" or len(code) != 7 or not code.isdigit():
        raise ValueError(f"{org} is not a school with a 7-digit LAEstab number")
    return code[:3], code[3:]


def ctf_file_name(from_school: str, to_school: str, sequence: int) -> str:
    """`<LA><estab>_CTF_<LA><estab>_<nnn>.xml`: source, destination, file sequence number."""
    la_from, estab_from = school_code(from_school)
    la_to, estab_to = school_code(to_school)
    return f"{la_from}{estab_from}_CTF_{la_to}{estab_to}_{sequence % 1000:03d}.xml"
