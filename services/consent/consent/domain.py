"""Consents, information-sharing agreements, sharing decisions and the ledger chain.

Plain Python: the rules of DESIGN.md "Sharing decisions", testable without a broker,
a database or a framework.
"""
from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime

CATEGORIES = ("contact", "education", "attendance", "aln", "health_wellbeing", "safeguarding", "family_context")
PURPOSES = ("referral", "appointment", "transition", "team_around_family")
CONSENT = "consent"
STATUTORY_BASES = ("safeguarding", "legal_obligation")
BASES = (CONSENT, *STATUTORY_BASES)
RELATIONSHIPS = ("parent", "carer", "self")
EVIDENCE = ("written", "verbal", "portal")
AGE_OF_CONSENT = 16

ACTIVE, WITHDRAWN, EXPIRED = "active", "withdrawn", "expired"
GENESIS_HASH = "0" * 64
# how an entry's link was computed: HMAC-SHA256 under the key whose fingerprint follows
# (`hmac-sha256:<fingerprint>`, since keys rotate); entries from before fingerprints, kept as they
# were, are `hmac-sha256` (under a key of the keyring) or, before the ledger key, plain SHA-256.
# Each kind only ever precedes the next.
KEYED, UNKEYED = "hmac-sha256", "sha256"


def fingerprint(key: bytes) -> str:
    """A key's name in the ledger: 8 hex digits of its SHA-256 (the key itself is never stored)."""
    return hashlib.sha256(b"pont-ledger-key\0" + key).hexdigest()[:8]


@dataclass(frozen=True)
class LedgerKeys:
    """The ledger's HMAC keys: `current` seals new entries; `previous` (oldest first) are the keys
    it replaced, kept so the entries they sealed still verify. Rotating: the new key becomes
    current, the old one goes to the end of `previous`."""

    current: bytes
    previous: tuple[bytes, ...] = ()

    @classmethod
    def from_secrets(cls, current: str, previous=()) -> LedgerKeys:
        return cls(current.encode(), tuple(key.encode() for key in previous))

    @classmethod
    def of(cls, keys: LedgerKeys | bytes) -> LedgerKeys:
        return keys if isinstance(keys, LedgerKeys) else cls(keys)

    @property
    def in_order(self) -> tuple[bytes, ...]:
        return (*self.previous, self.current)

    @property
    def sealing_chain(self) -> str:
        return f"{KEYED}:{fingerprint(self.current)}"

    def rank(self, chain: str) -> int | None:
        """The position (oldest first) of the key a `hmac-sha256:<fingerprint>` entry names; None if not held."""
        if not chain.startswith(f"{KEYED}:"):
            return None
        named = chain.removeprefix(f"{KEYED}:")
        return next((i for i, key in enumerate(self.in_order) if fingerprint(key) == named), None)


class RuleViolation(Exception):
    """Input the rules reject; names the field at fault."""

    def __init__(self, field_name: str, message: str):
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


class NotPermitted(Exception):
    """The caller may not do this (e.g. assert a statutory basis without the DSL role)."""


class NotVisible(Exception):
    """The caller's organisation has no record of this: answered as not found."""


def age_on(date_of_birth: date, today: date) -> int:
    years = today.year - date_of_birth.year
    return years - ((today.month, today.day) < (date_of_birth.month, date_of_birth.day))


def young_person_decides(date_of_birth: date | None, competence_assessed: bool, today: date) -> bool:
    """Whether a young person may decide for themselves: True at 16 or over; under 16 only with a
    recorded competence assessment (False then: entitled by the assessment, not by age)."""
    if date_of_birth is None:
        raise RuleViolation("child.date_of_birth", "needed to judge whether the young person may consent")
    if age_on(date_of_birth, today) >= AGE_OF_CONSENT:
        return True
    if not competence_assessed:
        raise RuleViolation("competence_assessed",
                            "a young person under 16 may consent only with a recorded competence assessment")
    return False


def _known(field_name: str, values, allowed) -> tuple[str, ...]:
    values = tuple(dict.fromkeys(values or ()))
    if not values:
        raise RuleViolation(field_name, "must name at least one")
    for index, value in enumerate(values):
        if value not in allowed:
            raise RuleViolation(f"{field_name}.{index}", f"unknown value; one of {', '.join(allowed)}")
    return values


# --- agreements ----------------------------------------------------------------------

@dataclass(frozen=True)
class Agreement:
    """A WASPI-style information-sharing protocol between organisations.

    An administrator of any organisation may propose one; it is in force only once an
    administrator of every party has approved it, between its dates, until a party (or
    the proposer) revokes it. Revocation stops new sharing at once.
    """

    id: str
    parties: frozenset[str]
    purposes: frozenset[str]
    categories: frozenset[str]
    valid_from: date
    valid_to: date
    created_by: str = ""
    proposed_by_org: str = ""
    approvals: frozenset[str] = frozenset()
    revoked_at: datetime | None = None

    @classmethod
    def create(cls, id: str, parties, purposes, categories, valid_from: date, valid_to: date,
               created_by: str = "", proposed_by_org: str = "") -> Agreement:
        parties = tuple(dict.fromkeys(parties or ()))
        if len(parties) < 2:
            raise RuleViolation("parties", "an agreement needs at least two organisations")
        if valid_to < valid_from:
            raise RuleViolation("valid_to", "must not be before valid_from")
        return cls(id, frozenset(parties), frozenset(_known("purposes", purposes, PURPOSES)),
                   frozenset(_known("categories", categories, CATEGORIES)), valid_from, valid_to, created_by,
                   proposed_by_org, frozenset({proposed_by_org}) & frozenset(parties))

    @property
    def awaiting(self) -> frozenset[str]:
        """The parties whose approval is still missing."""
        return self.parties - self.approvals

    def visible_to(self, org: str) -> bool:
        return org in self.parties or org == self.proposed_by_org

    def status(self, today: date) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.awaiting:
            return "proposed"
        if today > self.valid_to:
            return "expired"
        return "active" if today >= self.valid_from else "approved"

    def approved_by(self, org: str) -> Agreement:
        """This agreement with `org`'s approval; only a party approves, and not once revoked."""
        if not self.visible_to(org):
            raise NotVisible()
        if org not in self.parties:
            raise NotPermitted("only an administrator of a party approves an agreement")
        if self.revoked_at is not None:
            raise RuleViolation("status", "the agreement was revoked")
        return replace(self, approvals=self.approvals | {org})

    def revoked_by(self, org: str, at: datetime) -> Agreement:
        """This agreement revoked by `org` (a party or the proposer); revoking twice is refused."""
        if not self.visible_to(org):
            raise NotVisible()
        if self.revoked_at is not None:
            raise RuleViolation("status", "the agreement was already revoked")
        return replace(self, revoked_at=at)

    def in_force(self, today: date) -> bool:
        return self.revoked_at is None and not self.awaiting and self.valid_from <= today <= self.valid_to

    def covers(self, from_org: str, to_org: str, purpose: str, category: str, today: date) -> bool:
        return (self.in_force(today) and from_org in self.parties and to_org in self.parties
                and purpose in self.purposes and category in self.categories)


# --- consents ------------------------------------------------------------------------

@dataclass(frozen=True)
class Consent:
    """Consent to share a child's data with named recipients, for purposes and categories."""

    id: str
    child_ref: str
    relationship: str
    competence_assessed: bool
    young_person_16_plus: bool
    recipients: tuple[str, ...]
    purposes: tuple[str, ...]
    categories: tuple[str, ...]
    evidence: str
    recorded_by_org: str
    recorded_by: str
    recorded_at: datetime
    expires_on: date | None = None
    status: str = ACTIVE
    status_changed_at: datetime | None = None

    @classmethod
    def record(cls, *, id: str, child_ref: str, relationship: str, competence_assessed: bool,
               date_of_birth: date | None, recipients, purposes, categories, evidence: str,
               expires_on: date | None, recorded_by_org: str, recorded_by: str, now: datetime) -> Consent:
        today = now.date()
        if relationship not in RELATIONSHIPS:
            raise RuleViolation("given_by.relationship", f"one of {', '.join(RELATIONSHIPS)}")
        if evidence not in EVIDENCE:
            raise RuleViolation("evidence", f"one of {', '.join(EVIDENCE)}")
        sixteen_plus = relationship == "self" and young_person_decides(date_of_birth, competence_assessed, today)
        if expires_on is not None and expires_on < today:
            raise RuleViolation("expires_on", "is in the past")
        recipients = tuple(dict.fromkeys(recipients or ()))
        if not recipients:
            raise RuleViolation("recipients", "must name at least one")
        return cls(
            id=id, child_ref=child_ref, relationship=relationship, competence_assessed=bool(competence_assessed),
            young_person_16_plus=sixteen_plus, recipients=recipients,
            purposes=_known("purposes", purposes, PURPOSES), categories=_known("categories", categories, CATEGORIES),
            evidence=evidence, recorded_by_org=recorded_by_org, recorded_by=recorded_by, recorded_at=now,
            expires_on=expires_on,
        )

    @property
    def giver_entitled(self) -> bool:
        """A parent/carer, or the young person when 16+ or assessed as competent."""
        if self.relationship in ("parent", "carer"):
            return True
        return self.relationship == "self" and (self.young_person_16_plus or self.competence_assessed)

    def has_lapsed(self, today: date) -> bool:
        return self.expires_on is not None and self.expires_on < today

    def in_force(self, today: date) -> bool:
        return self.status == ACTIVE and not self.has_lapsed(today) and self.giver_entitled

    def scope_covers(self, to_org: str, purpose: str, category: str) -> bool:
        return to_org in self.recipients and purpose in self.purposes and category in self.categories

    def visible_to(self, org: str) -> bool:
        return org == self.recorded_by_org or org in self.recipients

    def withdraw(self, now: datetime) -> Consent:
        if self.status == EXPIRED:
            raise RuleViolation("status", "this consent has already expired")
        return replace(self, status=WITHDRAWN, status_changed_at=now)

    def expire(self, now: datetime) -> Consent:
        return replace(self, status=EXPIRED, status_changed_at=now)


# --- decisions -----------------------------------------------------------------------

@dataclass(frozen=True)
class SharingRequest:
    """A question: may `categories` about a child go from one organisation to another?"""

    child_ref: str
    from_org: str
    to_org: str
    purpose: str
    categories: tuple[str, ...]
    caller_sub: str
    caller_roles: frozenset[str]
    basis: str | None = None
    justification: str | None = None

    def __post_init__(self):
        if not self.child_ref:
            raise RuleViolation("child_ref", "is required")
        if self.purpose not in PURPOSES:
            raise RuleViolation("purpose", f"unknown purpose; one of {', '.join(PURPOSES)}")
        object.__setattr__(self, "categories", _known("categories", self.categories, CATEGORIES))
        if self.basis is not None and self.basis not in BASES:
            raise RuleViolation("basis", f"one of {', '.join(BASES)}")

    @property
    def statutory(self) -> bool:
        return self.basis in STATUTORY_BASES


@dataclass(frozen=True)
class CategoryDecision:
    category: str
    allowed: bool
    basis: str | None
    basis_ref: str | None
    reason: str

    def as_dict(self) -> dict:
        return {"category": self.category, "allowed": self.allowed, "basis": self.basis,
                "basis_ref": self.basis_ref, "reason": self.reason}


@dataclass(frozen=True)
class Decision:
    decisions: tuple[CategoryDecision, ...]
    flagged_for_review: bool

    @property
    def allowed(self) -> tuple[CategoryDecision, ...]:
        return tuple(d for d in self.decisions if d.allowed)

    def as_dict(self) -> dict:
        return {"decisions": [d.as_dict() for d in self.decisions], "flagged_for_review": self.flagged_for_review}


def statutory_reference(basis: str, justification: str, caller_sub: str) -> str:
    """A stable reference to a DSL's justification, without its (free-text) content."""
    digest = hashlib.sha256(f"{caller_sub}\n{justification}".encode()).hexdigest()[:16]
    return f"{basis}:{digest}"


def check_statutory_assertion(request: SharingRequest) -> None:
    """A statutory basis is only for a DSL with a written justification; anything else is refused."""
    if not request.statutory:
        return
    if "dsl" not in request.caller_roles:
        raise NotPermitted(f"only a designated safeguarding lead may share on a {request.basis} basis")
    if not (request.justification or "").strip():
        raise RuleViolation("justification", f"a {request.basis} basis needs a written justification")


def decide(request: SharingRequest, agreements: list[Agreement], consents: list[Consent], today: date) -> Decision:
    """Allow or deny each category, with its basis and reference, or the reason it is denied."""
    check_statutory_assertion(request)
    consents = sorted((c for c in consents if c.child_ref == request.child_ref),
                      key=lambda c: c.recorded_at, reverse=True)
    results = []
    for category in request.categories:
        if not any(a.covers(request.from_org, request.to_org, request.purpose, category, today) for a in agreements):
            results.append(CategoryDecision(
                category, False, None, None,
                f"no information-sharing agreement in force between {request.from_org} and {request.to_org} "
                f"covers {request.purpose} / {category}"))
        elif request.statutory:
            results.append(CategoryDecision(
                category, True, request.basis,
                statutory_reference(request.basis, request.justification, request.caller_sub),
                f"{request.basis} basis asserted by a designated safeguarding lead; flagged for review"))
        else:
            results.append(_by_consent(request, category, consents, today))
    return Decision(tuple(results), flagged_for_review=request.statutory)


def _by_consent(request: SharingRequest, category: str, consents: list[Consent], today: date) -> CategoryDecision:
    in_scope = [c for c in consents if c.scope_covers(request.to_org, request.purpose, category)]
    for consent in in_scope:
        if consent.in_force(today):
            return CategoryDecision(category, True, CONSENT, consent.id,
                                    f"consent {consent.id} covers {request.to_org}, {request.purpose}, {category}")
    if not in_scope:
        reason = f"no consent covers {request.to_org}, {request.purpose}, {category}"
    else:
        latest = in_scope[0]
        if latest.status == WITHDRAWN:
            reason = f"consent {latest.id} was withdrawn"
        elif latest.status == EXPIRED or latest.has_lapsed(today):
            reason = f"consent {latest.id} has expired"
        else:
            reason = f"consent {latest.id} was not given by a person entitled to give it"
    return CategoryDecision(category, False, None, None, reason)


# --- the ledger chain ----------------------------------------------------------------

def canonical_time(at: datetime) -> str:
    """One spelling of an instant, whatever zone the database hands it back in."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class LedgerEntry:
    """One line of the disclosure ledger: a disclosure, or a withdrawal of consent."""

    seq: int
    id: str
    kind: str
    at: datetime
    child_ref: str
    from_org: str
    to_org: str | None
    purpose: str | None
    categories: tuple[str, ...]
    basis: str
    basis_ref: str
    by: str
    flagged_for_review: bool = False
    subject_kind: str | None = None
    subject_id: str | None = None
    justification: str | None = None
    recipients: tuple[str, ...] = field(default=())
    consent_refs: tuple[str, ...] = field(default=())  # every consent the categories rest on
    prev_hash: str = GENESIS_HASH
    hash: str = ""
    chain: str = KEYED

    def content(self) -> dict:
        return {
            "seq": self.seq, "id": self.id, "kind": self.kind, "at": canonical_time(self.at),
            "child_ref": self.child_ref, "from_org": self.from_org, "to_org": self.to_org, "purpose": self.purpose,
            "categories": list(self.categories), "basis": self.basis, "basis_ref": self.basis_ref, "by": self.by,
            "flagged_for_review": bool(self.flagged_for_review), "subject_kind": self.subject_kind,
            "subject_id": self.subject_id, "justification": self.justification, "recipients": list(self.recipients),
            "consent_refs": list(self.consent_refs),
        }

    def matches(self, keys: LedgerKeys | bytes) -> bool:
        """Whether the entry's content and link give its hash, under the key it names (an entry from
        before fingerprints: under any key held)."""
        keys = LedgerKeys.of(keys)
        body = _link_body(self.prev_hash, self.content())
        if self.chain == UNKEYED:
            candidates = [hashlib.sha256(body).hexdigest()]
        elif self.chain == KEYED:
            candidates = [_hmac(key, body) for key in keys.in_order]
        elif self.chain.startswith(f"{KEYED}:") and (rank := keys.rank(self.chain)) is not None:
            candidates = [_hmac(keys.in_order[rank], body)]
        else:
            return False
        return any(hmac.compare_digest(candidate, self.hash) for candidate in candidates)

    def chained_after(self, previous: LedgerEntry | None, keys: LedgerKeys | bytes) -> LedgerEntry:
        """This entry sealed onto the end of the chain, under the current key."""
        keys = LedgerKeys.of(keys)
        seq = previous.seq + 1 if previous else 1
        prev_hash = previous.hash if previous else GENESIS_HASH
        return replace(self, seq=seq, prev_hash=prev_hash, chain=keys.sealing_chain,
                       hash=_hmac(keys.current, _link_body(prev_hash, {**self.content(), "seq": seq})))


def _link_body(prev_hash: str, content: dict) -> bytes:
    return json.dumps({"prev_hash": prev_hash, **content}, sort_keys=True, separators=(",", ":")).encode()


def _hmac(key: bytes, body: bytes) -> str:
    return hmac.new(key, body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Anchor:
    """A chain head (seq, hash) that consent published and another database kept."""

    seq: int
    hash: str
    held_by: str = ""


@dataclass(frozen=True)
class Verification:
    """The outcome of checking the ledger: intact, or the first entry (seq) that breaks it, and why."""

    entries: int
    head: dict | None
    unkeyed: int = 0
    anchors_checked: int = 0
    first_broken: dict | None = None

    @property
    def intact(self) -> bool:
        return self.first_broken is None


def verify_chain(entries, keys: LedgerKeys | bytes, anchors=()) -> Verification:
    """Recompute every link (HMAC under the key each entry names) and compare the chain with the
    anchors held elsewhere.

    Detects an altered entry (its link no longer matches), one rewritten and re-chained without
    the key, a removed entry (sequence gap), an entry of an older kind after a newer one (unkeyed
    after keyed, unnamed after named), one sealed with a key older than its predecessor's (a retired
    key, leaked, cannot rewrite what came after the rotation) or with a key not held, and a dropped
    tail or a chain rebuilt from some point on (an anchor's seq is missing, or its hash differs).
    """
    keys = LedgerKeys.of(keys)
    by_seq: dict[int, str] = {}
    checked, unkeyed, previous, broken = 0, 0, None, None
    kind_seen, rank_seen = 0, -1   # kinds in order: 0 unkeyed, 1 keyed unnamed, 2 keyed named
    for entry in entries:
        checked += 1
        expected_prev = previous.hash if previous else GENESIS_HASH
        expected_seq = previous.seq + 1 if previous else 1
        kind = 0 if entry.chain == UNKEYED else 1 if entry.chain == KEYED else 2
        rank = keys.rank(entry.chain) if kind == 2 else None
        if entry.seq != expected_seq:
            broken = _broken(entry.seq, f"sequence gap: expected {expected_seq}")
        elif entry.prev_hash != expected_prev:
            broken = _broken(entry.seq, "does not link to the previous entry's hash")
        elif kind < kind_seen:
            broken = _broken(entry.seq, "an unkeyed entry after keyed ones" if kind == 0
                             else "an entry without its key's name after named ones")
        elif kind == 2 and rank is None:
            broken = _broken(entry.seq, "sealed with a key this service does not hold")
        elif kind == 2 and rank < rank_seen:
            broken = _broken(entry.seq, "sealed with a key older than the previous entry's (a retired key)")
        elif not entry.matches(keys):
            broken = _broken(entry.seq, "content does not match its hash")
        if broken:
            break
        kind_seen, rank_seen = kind, rank if rank is not None else rank_seen
        unkeyed += entry.chain == UNKEYED
        by_seq[entry.seq] = entry.hash
        previous = entry
    head = {"seq": previous.seq, "hash": previous.hash} if previous else None
    anchors = sorted(anchors, key=lambda a: a.seq)
    if broken is None:
        for anchor in anchors:
            if anchor.seq not in by_seq:
                broken = _broken(anchor.seq, f"the entry {anchor.held_by or 'an anchor'} holds is missing"
                                             " (the tail was dropped)")
                break
            if by_seq[anchor.seq] != anchor.hash:
                broken = _broken(anchor.seq, f"the hash differs from the one {anchor.held_by or 'an anchor'} holds")
                break
    return Verification(checked, head, unkeyed, len(anchors), broken)


def _broken(seq: int, why: str) -> dict:
    return {"seq": seq, "reason": why}


def first_broken_link(entries, keys: LedgerKeys | bytes) -> tuple[int, str] | None:
    """The first entry (seq) whose content or link does not match, and why; None if intact."""
    broken = verify_chain(entries, keys).first_broken
    return None if broken is None else (broken["seq"], broken["reason"])


# --- families ------------------------------------------------------------------------

INVITE_DAYS = 14
INVITE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"   # no 0/O or 1/I to misread
FAMILY_KINDS = ("disclosure", "withdrawal")           # what a family's history shows of the ledger
EXEMPTION_LONGEST = 366                                # days a DSL may keep a disclosure from a family unreviewed
NOTICE_ATTEMPTS = 10                                   # tries at sending a notice before it is left unsent
ENDING_NOTICE_DAYS = 14                                # a family is told this many days before a consent ends


def new_invite_code(random_bytes: bytes) -> str:
    """A one-time code from 16 random bytes: 16 letters and digits (80 bits), in groups of 4."""
    letters = "".join(INVITE_ALPHABET[b % len(INVITE_ALPHABET)] for b in random_bytes[:16])
    return "-".join(letters[i:i + 4] for i in range(0, 16, 4))


def invite_code_hash(code: str) -> str:
    return hashlib.sha256(b"pont-family-invite\0" + code.encode()).hexdigest()


@dataclass(frozen=True)
class FamilyLink:
    """A family member's link to one child: as a parent or carer, or as the young person.

    A young person who decides for themselves (16+, or assessed as competent) owns the consents
    they gave: their parents neither see those consents nor what was disclosed on them, nor may
    withdraw them; the young person sees and may withdraw every consent about them.
    """

    child_ref: str
    relationship: str
    date_of_birth: date | None = None
    competence_assessed: bool = False

    @property
    def is_young_person(self) -> bool:
        return self.relationship == "self"

    def sees(self, consent: Consent) -> bool:
        return consent.child_ref == self.child_ref and (self.is_young_person or consent.relationship != "self")

    def sees_entry(self, entry: LedgerEntry, own_consents: set[str]) -> bool:
        """`own_consents`: the ids of the consents the young person gave themselves."""
        if entry.child_ref != self.child_ref or entry.kind not in FAMILY_KINDS:
            return False
        if self.is_young_person:
            return True
        return not own_consents.intersection({*entry.consent_refs, entry.basis_ref})


    def give(self, *, id: str, recipients, purposes, categories, expires_on: date | None, school: str,
             member: str, now: datetime) -> Consent:
        """The consent this family member gives through the portal, as the parent, carer or young person they are."""
        return Consent.record(
            id=id, child_ref=self.child_ref, relationship=self.relationship,
            competence_assessed=self.competence_assessed, date_of_birth=self.date_of_birth, recipients=recipients,
            purposes=purposes, categories=categories, evidence="portal", expires_on=expires_on,
            recorded_by_org=school, recorded_by=member, now=now)


def exemption_review_problem(review_on: date, today: date) -> str | None:
    if review_on <= today:
        return "must be a day after today"
    if (review_on - today).days > EXEMPTION_LONGEST:
        return f"must be within {EXEMPTION_LONGEST} days"
    return None
