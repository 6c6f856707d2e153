"""The sharing rules of DESIGN.md, table-driven: plain Python, no broker, no database."""
from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from consent.domain import (
    GENESIS_HASH,
    KEYED,
    UNKEYED,
    Agreement,
    Anchor,
    Consent,
    LedgerEntry,
    LedgerKeys,
    NotPermitted,
    NotVisible,
    RuleViolation,
    SharingRequest,
    decide,
    fingerprint,
    first_broken_link,
    verify_chain,
)

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
TODAY = NOW.date()
SCHOOL, HEALTH, SOCIAL = "school:6612001", "health:cardiff-vale", "social_care:cardiff"
AUTHORITY = "local_authority:cardiff"
CHILD = "c_" + "a" * 32


def agreement(parties=(SCHOOL, HEALTH), purposes=("referral",), categories=("contact", "health_wellbeing"),
              valid_from=date(2026, 1, 1), valid_to=date(2026, 12, 31)) -> Agreement:
    """An agreement every party has approved."""
    proposed = Agreement.create(str(uuid.uuid4()), parties, purposes, categories, valid_from, valid_to,
                                proposed_by_org=AUTHORITY)
    for party in parties:
        proposed = proposed.approved_by(party)
    return proposed


def consent(relationship="parent", competence_assessed=False, date_of_birth=date(2015, 5, 5),
            recipients=(HEALTH,), purposes=("referral",), categories=("contact", "health_wellbeing"),
            expires_on=None, now=NOW, status=None) -> Consent:
    given = Consent.record(
        id=str(uuid.uuid4()), child_ref=CHILD, relationship=relationship, competence_assessed=competence_assessed,
        date_of_birth=date_of_birth, recipients=recipients, purposes=purposes, categories=categories,
        evidence="written", expires_on=expires_on, recorded_by_org=SCHOOL, recorded_by="staff1", now=now)
    if status == "withdrawn":
        return given.withdraw(now)
    if status == "expired":
        return given.expire(now)
    return given


def ask(categories=("contact",), to_org=HEALTH, purpose="referral", roles=("school_staff",), basis=None,
        justification=None) -> SharingRequest:
    return SharingRequest(CHILD, SCHOOL, to_org, purpose, tuple(categories), "staff1", frozenset(roles),
                          basis, justification)


def verdicts(decision) -> dict[str, bool]:
    return {d.category: d.allowed for d in decision.decisions}


A_MONTH_AGO = NOW - timedelta(days=30)

DECISION_TABLE = [
    # (case, agreements, consents, request, expected allowed per category, expected basis of the allowed)
    ("no agreement → deny", [], [consent()], ask(), {"contact": False}, None),
    ("agreement between other orgs → deny", [agreement(parties=(SCHOOL, SOCIAL))], [consent()], ask(),
     {"contact": False}, None),
    ("agreement for another purpose → deny", [agreement(purposes=("transition",))], [consent()], ask(),
     {"contact": False}, None),
    ("agreement out of its validity period → deny", [agreement(valid_to=date(2026, 2, 1))], [consent()], ask(),
     {"contact": False}, None),
    ("agreement without consent → deny", [agreement()], [], ask(), {"contact": False}, None),
    ("consent covering recipient, purpose and category → allow by consent", [agreement()], [consent()], ask(),
     {"contact": True}, "consent"),
    ("category outside the consent → denied for that category only",
     [agreement(categories=("contact", "aln"))], [consent(categories=("contact",))], ask(("contact", "aln")),
     {"contact": True, "aln": False}, "consent"),
    ("category outside the agreement → denied for that category only",
     [agreement(categories=("contact",))], [consent()], ask(("contact", "health_wellbeing")),
     {"contact": True, "health_wellbeing": False}, "consent"),
    ("consent for another recipient → deny", [agreement(parties=(SCHOOL, HEALTH, SOCIAL))],
     [consent(recipients=(SOCIAL,))], ask(), {"contact": False}, None),
    ("consent for another purpose → deny", [agreement()], [consent(purposes=("appointment",))], ask(),
     {"contact": False}, None),
    ("expired by date (timer not yet run) → deny", [agreement()],
     [consent(expires_on=TODAY - timedelta(days=1), now=A_MONTH_AGO)], ask(), {"contact": False}, None),
    ("expired by status → deny", [agreement()], [consent(status="expired")], ask(), {"contact": False}, None),
    ("valid through its expiry date → allow", [agreement()], [consent(expires_on=TODAY)], ask(),
     {"contact": True}, "consent"),
    ("withdrawn → deny", [agreement()], [consent(status="withdrawn")], ask(), {"contact": False}, None),
    ("withdrawn, but another consent still covers → allow", [agreement()],
     [consent(status="withdrawn"), consent()], ask(), {"contact": True}, "consent"),
    ("young person of 16+ consenting for themselves → allow", [agreement()],
     [consent(relationship="self", date_of_birth=date(2009, 2, 28))], ask(), {"contact": True}, "consent"),
    ("under 16 with a competence assessment → allow", [agreement()],
     [consent(relationship="self", date_of_birth=date(2012, 1, 1), competence_assessed=True)], ask(),
     {"contact": True}, "consent"),
    ("carer's consent → allow", [agreement()], [consent(relationship="carer")], ask(), {"contact": True}, "consent"),
    ("safeguarding by a DSL with justification, no consent → allow, flagged", [agreement()], [],
     ask(roles=("dsl",), basis="safeguarding", justification="disclosure of harm at school today"),
     {"contact": True}, "safeguarding"),
    ("legal obligation by a DSL with justification → allow", [agreement()], [],
     ask(roles=("dsl",), basis="legal_obligation", justification="child protection file moves with pupil"),
     {"contact": True}, "legal_obligation"),
    ("safeguarding without an agreement → still deny", [], [],
     ask(roles=("dsl",), basis="safeguarding", justification="at risk"), {"contact": False}, None),
]


class TestDecide:
    @pytest.mark.parametrize("case,agreements,consents,request_,expected,basis", DECISION_TABLE,
                             ids=[row[0] for row in DECISION_TABLE])
    def test_rule(self, case, agreements, consents, request_, expected, basis):

        decision = decide(request_, agreements, consents, TODAY)

        assert verdicts(decision) == expected
        for d in decision.decisions:
            if d.allowed:
                assert d.basis == basis and d.basis_ref
            else:
                assert d.basis is None and d.reason

    def test_an_allowed_consent_decision_names_the_consent(self):
        given = consent()

        decision = decide(ask(), [agreement()], [given], TODAY)

        assert decision.decisions[0].basis_ref == given.id
        assert decision.flagged_for_review is False

    def test_a_statutory_decision_is_flagged_for_review(self):
        decision = decide(ask(roles=("dsl",), basis="safeguarding", justification="at risk"), [agreement()], [],
                          TODAY)

        assert decision.flagged_for_review is True

    @pytest.mark.parametrize("roles", [("school_staff",), ("school_nurse",), ("admin",), ()])
    @pytest.mark.parametrize("basis", ["safeguarding", "legal_obligation"])
    def test_a_statutory_basis_is_refused_to_anyone_but_a_dsl(self, roles, basis):
        with pytest.raises(NotPermitted):
            decide(ask(roles=roles, basis=basis, justification="at risk"), [agreement()], [], TODAY)

    @pytest.mark.parametrize("justification", [None, "", "   "])
    def test_a_statutory_basis_without_justification_is_refused(self, justification):
        with pytest.raises(RuleViolation) as refused:
            decide(ask(roles=("dsl",), basis="safeguarding", justification=justification), [agreement()], [], TODAY)

        assert refused.value.field == "justification"

    def test_a_withdrawn_consent_gives_the_reason(self):
        decision = decide(ask(), [agreement()], [consent(status="withdrawn")], TODAY)

        assert "withdrawn" in decision.decisions[0].reason

    @pytest.mark.parametrize("field_name,kwargs", [
        ("purpose", {"purpose": "gossip"}),
        ("categories.0", {"categories": ("shoe_size",)}),
        ("categories", {"categories": ()}),
        ("basis", {"basis": "curiosity"}),
    ])
    def test_a_malformed_question_names_the_field(self, field_name, kwargs):
        with pytest.raises(RuleViolation) as refused:
            ask(**kwargs)

        assert refused.value.field == field_name


RECORD_TABLE = [
    # (case, kwargs, field refused or None when valid)
    ("parent", {}, None),
    ("carer", {"relationship": "carer"}, None),
    ("young person of 16+ for themselves", {"relationship": "self", "date_of_birth": date(2010, 3, 1)}, None),
    ("young person turning 16 tomorrow", {"relationship": "self", "date_of_birth": date(2010, 3, 2)},
     "competence_assessed"),
    ("under 16 without a competence assessment", {"relationship": "self", "date_of_birth": date(2013, 1, 1)},
     "competence_assessed"),
    ("under 16 with a competence assessment",
     {"relationship": "self", "date_of_birth": date(2013, 1, 1), "competence_assessed": True}, None),
    ("self without a date of birth", {"relationship": "self", "date_of_birth": None}, "child.date_of_birth"),
    ("unknown relationship", {"relationship": "neighbour"}, "given_by.relationship"),
    ("expiry in the past", {"expires_on": TODAY - timedelta(days=1)}, "expires_on"),
    ("expiry today", {"expires_on": TODAY}, None),
    ("unknown category", {"categories": ("contact", "shoe_size")}, "categories.1"),
    ("unknown purpose", {"purposes": ("gossip",)}, "purposes.0"),
    ("no recipients", {"recipients": ()}, "recipients"),
]


class TestRecordConsent:
    @pytest.mark.parametrize("case,kwargs,refused_field", RECORD_TABLE, ids=[row[0] for row in RECORD_TABLE])
    def test_rule(self, case, kwargs, refused_field):
        if refused_field is None:
            assert consent(**kwargs).giver_entitled
        else:
            with pytest.raises(RuleViolation) as refused:
                consent(**kwargs)
            assert refused.value.field == refused_field

    def test_withdrawal_takes_effect_at_once(self):
        given = consent()
        assert verdicts(decide(ask(), [agreement()], [given], TODAY)) == {"contact": True}

        withdrawn = given.withdraw(NOW)

        assert verdicts(decide(ask(), [agreement()], [withdrawn], TODAY)) == {"contact": False}


class TestAgreement:
    @pytest.mark.parametrize("kwargs,field_name", [
        ({"parties": (SCHOOL,)}, "parties"),
        ({"valid_to": date(2025, 1, 1)}, "valid_to"),
        ({"categories": ("nope",)}, "categories.0"),
    ])
    def test_an_invalid_agreement_names_the_field(self, kwargs, field_name):
        with pytest.raises(RuleViolation) as refused:
            agreement(**kwargs)

        assert refused.value.field == field_name


KEY = b"ledger-key-for-tests"


def entry(i: int) -> LedgerEntry:
    return LedgerEntry(seq=0, id=str(uuid.uuid4()), kind="disclosure", at=NOW + timedelta(minutes=i),
                       child_ref=CHILD, from_org=SCHOOL, to_org=HEALTH, purpose="referral",
                       categories=("contact",), basis="consent", basis_ref="c1", by="staff1")


def chain(n: int, key: bytes = KEY, after: list[LedgerEntry] | None = None) -> list[LedgerEntry]:
    entries = list(after or [])
    previous = entries[-1] if entries else None
    for i in range(n):
        previous = entry(len(entries) + i).chained_after(previous, key)
        entries.append(previous)
    return entries


def unkeyed_chain(n: int) -> list[LedgerEntry]:
    """A ledger as it was written before the ledger key: plain SHA-256 links."""
    import hashlib
    import json
    from dataclasses import replace

    entries, previous = [], None
    for i in range(n):
        fresh = replace(entry(i), seq=i + 1, prev_hash=previous.hash if previous else GENESIS_HASH, chain=UNKEYED)
        body = json.dumps({"prev_hash": fresh.prev_hash, **fresh.content()}, sort_keys=True, separators=(",", ":"))
        previous = replace(fresh, hash=hashlib.sha256(body.encode()).hexdigest())
        entries.append(previous)
    return entries


def rechain(entries: list[LedgerEntry], start: int, key: bytes) -> list[LedgerEntry]:
    """What someone with database access does after rewriting entry `start`: re-link every later one."""
    out = entries[:start]
    for old in entries[start:]:
        out.append(old.chained_after(out[-1] if out else None, key))
    return out


class TestLedgerChain:
    def test_an_intact_chain_verifies(self):
        entries = chain(3)

        assert first_broken_link(entries, KEY) is None
        assert entries[0].prev_hash == GENESIS_HASH
        assert entries[2].prev_hash == entries[1].hash

    def test_an_altered_entry_is_found(self):
        from dataclasses import replace

        entries = chain(4)
        entries[1] = replace(entries[1], to_org=SOCIAL)

        seq, why = first_broken_link(entries, KEY)

        assert seq == 2 and "hash" in why

    def test_a_removed_entry_is_found(self):
        entries = chain(4)
        del entries[2]

        seq, _ = first_broken_link(entries, KEY)

        assert seq == 4

    def test_the_hash_does_not_depend_on_the_time_zone_it_is_read_in(self):
        from dataclasses import replace
        from datetime import timedelta as td

        sealed = chain(1)[0]
        elsewhere = replace(sealed, at=sealed.at.astimezone(timezone(td(hours=1))))

        assert elsewhere.matches(KEY)

    def test_an_entry_rewritten_and_re_chained_with_another_key_is_found(self):
        from dataclasses import replace

        entries = chain(4)
        entries[1] = replace(entries[1], to_org=SOCIAL)
        forged = rechain(entries, 1, b"a key the forger guessed")

        result = verify_chain(forged, KEY)

        assert not result.intact and result.first_broken["seq"] == 2

    def test_an_entry_rewritten_and_re_chained_unkeyed_is_found(self):
        """Re-chained with plain SHA-256 and marked as a legacy entry: unkeyed after keyed is refused."""
        import hashlib
        import json
        from dataclasses import replace

        entries = chain(4)
        forged = entries[:2]
        for old in entries[2:]:
            fresh = replace(old, to_org=SOCIAL, prev_hash=forged[-1].hash, chain=UNKEYED)
            body = json.dumps({"prev_hash": fresh.prev_hash, **fresh.content()}, sort_keys=True,
                              separators=(",", ":"))
            forged.append(replace(fresh, hash=hashlib.sha256(body.encode()).hexdigest()))

        result = verify_chain(forged, KEY)

        assert result.first_broken == {"seq": 3, "reason": "an unkeyed entry after keyed ones"}

    def test_unkeyed_entries_from_before_the_key_verify_and_are_counted(self):
        entries = chain(2, after=unkeyed_chain(3))

        result = verify_chain(entries, KEY)

        assert result.intact and result.entries == 5 and result.unkeyed == 3
        assert result.head == {"seq": 5, "hash": entries[-1].hash}

    def test_a_dropped_tail_is_found_through_an_anchor(self):
        entries = chain(5)
        anchor = Anchor(5, entries[-1].hash, "health:cardiff-vale")

        assert verify_chain(entries, KEY, [anchor]).intact
        dropped = verify_chain(entries[:3], KEY, [anchor])

        assert dropped.first_broken["seq"] == 5 and "missing" in dropped.first_broken["reason"]
        assert first_broken_link(entries[:3], KEY) is None  # without the anchor, nothing shows

    def test_a_chain_rebuilt_with_the_key_from_some_point_on_differs_from_the_anchor(self):
        from dataclasses import replace

        entries = chain(5)
        anchor = Anchor(4, entries[3].hash, "youth_work:cardiff")
        entries[1] = replace(entries[1], to_org=SOCIAL)
        rebuilt = rechain(entries, 1, KEY)

        result = verify_chain(rebuilt, KEY, [anchor])

        assert result.first_broken["seq"] == 4 and "differs" in result.first_broken["reason"]


class TestAgreementApproval:
    def test_a_proposal_is_in_force_only_once_every_party_approved(self):
        proposed = Agreement.create("a1", (SCHOOL, HEALTH), ("referral",), ("contact",), date(2026, 1, 1),
                                    date(2026, 12, 31), proposed_by_org=SCHOOL)
        assert proposed.awaiting == {HEALTH} and proposed.status(TODAY) == "proposed"
        assert not proposed.covers(SCHOOL, HEALTH, "referral", "contact", TODAY)
        approved = proposed.approved_by(HEALTH)
        assert approved.status(TODAY) == "active"
        assert approved.covers(SCHOOL, HEALTH, "referral", "contact", TODAY)

    def test_revocation_ends_it_at_once_and_cannot_be_repeated_or_undone_by_approving(self):
        revoked = agreement().revoked_by(HEALTH, datetime(2026, 3, 1, tzinfo=UTC))
        assert revoked.status(TODAY) == "revoked"
        assert not revoked.covers(SCHOOL, HEALTH, "referral", "contact", TODAY)
        with pytest.raises(RuleViolation):
            revoked.revoked_by(SCHOOL, datetime(2026, 3, 2, tzinfo=UTC))
        with pytest.raises(RuleViolation):
            revoked.approved_by(SCHOOL)

    def test_only_a_party_approves_and_an_outsider_cannot_see_it(self):
        proposed = Agreement.create("a2", (SCHOOL, HEALTH), ("referral",), ("contact",), date(2026, 1, 1),
                                    date(2026, 12, 31), proposed_by_org=AUTHORITY)
        assert proposed.awaiting == {SCHOOL, HEALTH}
        with pytest.raises(NotPermitted):
            proposed.approved_by(AUTHORITY)
        with pytest.raises(NotVisible):
            proposed.approved_by(SOCIAL)
        with pytest.raises(NotVisible):
            proposed.revoked_by(SOCIAL, datetime(2026, 3, 1, tzinfo=UTC))


OLD, NEW = b"the ledger key until the rotation", b"the ledger key from the rotation on"


class TestKeyRotation:
    def test_entries_sealed_before_a_rotation_verify_with_the_old_key_kept_and_new_ones_use_the_new(self):
        before = chain(2, OLD)
        rotated = LedgerKeys(NEW, previous=(OLD,))

        entries = chain(2, rotated, after=before)

        assert [e.chain for e in entries] == [f"{KEYED}:{fingerprint(OLD)}"] * 2 + [f"{KEYED}:{fingerprint(NEW)}"] * 2
        assert verify_chain(entries, rotated).intact

    def test_without_the_old_key_its_entries_do_not_verify(self):
        entries = chain(2, LedgerKeys(NEW, previous=(OLD,)), after=chain(2, OLD))

        assert verify_chain(entries, NEW).first_broken == {
            "seq": 1, "reason": "sealed with a key this service does not hold"}

    def test_a_retired_key_cannot_seal_an_entry_after_one_of_the_new_key(self):
        from dataclasses import replace

        rotated = LedgerKeys(NEW, previous=(OLD,))
        entries = chain(3, rotated, after=chain(2, OLD))
        entries[4] = replace(entries[4], to_org=SOCIAL)
        forged = rechain(entries, 4, OLD)   # the last entry rewritten with a retired key that leaked

        assert verify_chain(forged, rotated).first_broken == {
            "seq": 5, "reason": "sealed with a key older than the previous entry's (a retired key)"}

    def test_a_leaked_retired_key_re_sealing_everything_since_the_rotation_is_caught_by_the_anchors(self):
        from dataclasses import replace

        rotated = LedgerKeys(NEW, previous=(OLD,))
        entries = chain(2, rotated, after=chain(2, OLD))
        anchor = Anchor(seq=4, hash=entries[3].hash, held_by="health:cardiff-vale")
        entries[2] = replace(entries[2], to_org=SOCIAL)
        forged = rechain(entries, 2, OLD)

        assert verify_chain(forged, rotated).intact   # the chain alone cannot tell
        assert verify_chain(forged, rotated, [anchor]).first_broken == {
            "seq": 4, "reason": "the hash differs from the one health:cardiff-vale holds"}

    def test_entries_sealed_before_keys_were_named_verify_under_any_key_held_and_only_precede_named_ones(self):
        from dataclasses import replace

        unnamed = [replace(e, chain=KEYED) for e in chain(2, OLD)]   # as written before fingerprints
        rotated = LedgerKeys(NEW, previous=(OLD,))
        entries = chain(1, rotated, after=unnamed)

        assert verify_chain(entries, rotated).intact
        assert not verify_chain(entries, NEW).intact
        tail = replace(chain(1, rotated, after=entries)[-1], chain=KEYED)
        assert verify_chain([*entries, tail], rotated).first_broken == {
            "seq": 4, "reason": "an entry without its key's name after named ones"}
