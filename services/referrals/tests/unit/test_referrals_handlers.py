"""Referral handlers with a fake consent service, on the embedded SQLite store (`make_engine`, a temporary
file; no broker)."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from pont_shared.contract.errors import Conflict, Forbidden, Invalid
from pont_shared.contract.events import AgencyDecided, ConsentGranted
from pont_shared.contract.rpc.referrals import InvolvementQuery, RaiseReferral
from pont_shared.identity import make_upn
from pont_shared.messaging.db import make_engine
from pont_shared.messaging.uow import UnitOfWork
from referrals import handlers
from referrals.orm import metadata, tables

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
STAFF = {"sub": "t1", "org": "school:1", "roles": ["school_staff"]}
SECRET = "unit-test-key"


class FakeConsent:
    """Allows the categories it was told about; records every share request."""

    def __init__(self, allowed=()):
        self.allowed = set(allowed)
        self.requests = []

    def share(self, request):
        self.requests.append(request)
        decisions = [{"category": c, "allowed": c in self.allowed, "basis": "consent" if c in self.allowed else None,
                      "basis_ref": "consent-1" if c in self.allowed else None, "reason": ""}
                     for c in request["categories"]]
        any_allowed = any(d["allowed"] for d in decisions)
        return {"decisions": decisions, "disclosure_id": f"d{len(self.requests)}" if any_allowed else None,
                "flagged_for_review": False}


class GrantedDuringFirstQuestion(FakeConsent):
    """Denies the first question; a consent committed just after it allows the rest."""

    def share(self, request):
        answer = super().share(request)
        if len(self.requests) == 1:
            denied = [{**d, "allowed": False, "basis": None, "basis_ref": None} for d in answer["decisions"]]
            return {"decisions": denied, "disclosure_id": None, "flagged_for_review": False}
        return answer


class ConsentGoneAfterFirstQuestion(FakeConsent):
    def share(self, request):
        if self.requests:
            raise ConnectionError("consent is not answering")
        return super().share(request)


class LedgerConsent(FakeConsent):
    """Like the consent service: records one disclosure per allowed question, and answers a question
    asked again under the same idempotency key as the first one that shared something (one that
    shared nothing is decided afresh); its first `lose` replies are lost after the disclosure was
    recorded (the caller sees an error, as on an RPC timeout)."""

    def __init__(self, allowed=(), lose=0, during=None):
        super().__init__(allowed)
        self.lose, self.during = lose, during
        self.answers: dict[str, dict] = {}
        self.ledger: list[str] = []

    def share(self, request):
        if self.during is not None:
            self.during(request)
        key = request.get("idempotency_key") or f"unkeyed-{len(self.requests)}"   # each unkeyed question is new
        answer = self.answers.get(key)
        if answer is None:
            answer = super().share(request)
            if answer["disclosure_id"]:
                self.ledger.append(answer["disclosure_id"])
                self.answers[key] = answer
        if self.lose:
            self.lose -= 1
            raise ConnectionError("the reply was lost")
        return answer


@pytest.fixture
def database(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'referrals.db'}")
    metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def uow_factory(database):
    sessions = sessionmaker(database, expire_on_commit=False)
    return lambda: UnitOfWork(sessions, tables, source="/pont/referrals")


def events(uow_factory) -> list[dict]:
    with uow_factory() as uow:
        rows = uow.session.execute(select(tables.outbox.c.event_type, tables.outbox.c.routing_key,
                                          tables.outbox.c.body).order_by(tables.outbox.c.id)).all()
    return [{"type": t, "routing_key": k, "data": json.loads(b)["data"]} for t, k, b in rows]


def command(serial=1, **overrides) -> RaiseReferral:
    values = dict(child={"upn": make_upn(serial), "given_name": "Ffion", "family_name": "Jones",
                         "date_of_birth": "2015-04-12"},
                  to_org="health:1", service="school_nursing", reason="low mood", details="withdrawn",
                  urgency="urgent", share=["contact", "health_wellbeing"], caller=STAFF,
                  information={"health_wellbeing": "poor sleep"})
    values.update(overrides)
    return RaiseReferral.parse(values)


def granted(referral: dict, consent_id: str = "consent-1") -> ConsentGranted:
    return ConsentGranted(consent_id=consent_id, child_ref=referral["child_ref"], recipients=["health:1"],
                          purposes=["referral"], categories=["contact", "health_wellbeing"])


def raise_(uow_factory, consent, **kwargs) -> dict:
    return handlers.raise_referral(uow_factory(), command(**kwargs), consent=consent, clock=lambda: NOW,
                                   child_ref_secret=SECRET).model_dump()


class TestRaiseReferral:
    def test_allowed_sharing_sends_only_the_allowed_categories_to_the_recipient(self, uow_factory):
        result = raise_(uow_factory, FakeConsent({"contact"}))

        assert result["status"] == "sent"
        delivered = [e for e in events(uow_factory) if e["type"] == "pont.disclosure.delivered.v1"]
        assert [e["routing_key"] for e in delivered] == ["health:1"]
        assert set(delivered[0]["data"]["content"]["categories"]) == {"contact"}
        assert "poor sleep" not in json.dumps(delivered[0])

    def test_denied_sharing_holds_it(self, uow_factory):
        result = raise_(uow_factory, FakeConsent())

        assert result["status"] == "awaiting_consent"
        types = [e["type"] for e in events(uow_factory)]
        assert types == ["pont.referral.raised.v1", "pont.referral.held.v1"]

    def test_a_consent_granted_while_it_was_being_raised_sends_it(self, uow_factory):
        consent = GrantedDuringFirstQuestion({"contact"})

        result = raise_(uow_factory, consent)

        assert result["status"] == "sent"
        view = handlers.get_referral(uow_factory(), result["id"], STAFF)
        assert [s["status"] for s in view["history"]] == ["awaiting_consent", "sent"]
        assert [e["type"] for e in events(uow_factory)].count("pont.disclosure.delivered.v1") == 1

    def test_a_failing_second_question_leaves_it_held_without_an_error(self, uow_factory):
        consent = ConsentGoneAfterFirstQuestion()

        result = raise_(uow_factory, consent)

        assert result["status"] == "awaiting_consent"
        assert handlers.get_referral(uow_factory(), result["id"], STAFF)["status"] == "awaiting_consent"

    def test_the_deadline_skips_school_holidays(self, uow_factory):
        half_term = frozenset(NOW.date() + timedelta(days=n) for n in range(1, 5))  # Tuesday to Friday

        result = handlers.raise_referral(uow_factory(), command(urgency="safeguarding"),
                                         consent=FakeConsent({"contact"}), clock=lambda: NOW,
                                         child_ref_secret=SECRET, holidays=half_term)

        assert result.deadline == NOW + timedelta(days=7)  # the next school day is the following Monday

    def test_a_second_open_referral_is_a_conflict_with_a_link(self, uow_factory):
        first = raise_(uow_factory, FakeConsent())

        with pytest.raises(Conflict) as conflict:
            raise_(uow_factory, FakeConsent())

        assert conflict.value.args[1]["existing"] == f"/api/v1/referrals/{first['id']}"

    def test_safeguarding_basis_by_staff_is_forbidden(self, uow_factory):
        with pytest.raises(Forbidden):
            raise_(uow_factory, FakeConsent(), basis="safeguarding", justification="risk")

    def test_an_invalid_upn_names_the_field(self, uow_factory):
        with pytest.raises(Invalid) as invalid:
            raise_(uow_factory, FakeConsent(), child={"upn": "X1"})

        assert invalid.value.errors[0]["field"] == "child.upn"

    def test_the_same_idempotency_key_returns_the_first_result_without_a_second_referral(self, uow_factory):
        consent = FakeConsent({"contact"})
        first = raise_(uow_factory, consent, idempotency_key="k1")

        again = raise_(uow_factory, consent, idempotency_key="k1")

        assert again == first  # the replay reads as the first answer did
        assert len(consent.requests) == 1

    def test_the_same_key_after_its_referral_was_withdrawn_returns_the_first_result(self, uow_factory):
        consent = FakeConsent({"contact"})
        first = raise_(uow_factory, consent, idempotency_key="k1")
        handlers.withdraw_referral(uow_factory(), first["id"], STAFF, clock=lambda: NOW)

        again = raise_(uow_factory, consent, idempotency_key="k1")   # no open referral refuses it: the key does

        assert again == first
        assert [r["id"] for r in handlers.list_referrals(uow_factory(), STAFF)] == [first["id"]]
        assert len(consent.requests) == 1

    def test_the_same_key_with_another_request_is_a_conflict_that_changes_nothing(self, uow_factory):
        consent = FakeConsent({"contact"})
        first = raise_(uow_factory, consent, idempotency_key="k1")
        before = events(uow_factory)

        with pytest.raises(Conflict):
            raise_(uow_factory, consent, serial=2, idempotency_key="k1")   # another pupil under the same key

        assert [r["id"] for r in handlers.list_referrals(uow_factory(), STAFF)] == [first["id"]]
        assert events(uow_factory) == before and len(consent.requests) == 1

    def test_consent_is_asked_with_no_transaction_open_and_the_referral_already_committed(self, uow_factory,
                                                                                          database):
        seen = []

        def check(request):
            seen.append((database.pool.checkedout(),
                         handlers.get_referral(uow_factory(), request["subject_id"], STAFF)["status"]))

        raise_(uow_factory, LedgerConsent(during=check))

        assert seen == [(0, "awaiting_consent"), (0, "awaiting_consent")]  # the question, and the one asked again

    def test_a_reply_lost_after_the_disclosure_leaves_it_awaiting_and_the_retry_sends_it_once(self, uow_factory):
        consent = LedgerConsent({"contact"}, lose=1)

        with pytest.raises(ConnectionError):
            raise_(uow_factory, consent, idempotency_key="k1")
        [waiting] = handlers.list_referrals(uow_factory(), STAFF)
        retried = raise_(uow_factory, consent, idempotency_key="k1")
        replayed = raise_(uow_factory, consent, idempotency_key="k1")

        assert waiting["status"] == "awaiting_consent" and waiting["history"] == []
        assert retried["id"] == waiting["id"] and retried["status"] == "sent"
        assert replayed == retried  # the replay reads as the answer it repeats
        assert consent.ledger == ["d1"]   # one disclosure in consent's ledger, and it is the one delivered
        delivered = [e for e in events(uow_factory) if e["type"] == "pont.disclosure.delivered.v1"]
        assert [e["data"]["disclosure_id"] for e in delivered] == ["d1"]
        assert [e["type"] for e in events(uow_factory)].count("pont.referral.raised.v1") == 1

    def test_a_retry_while_it_is_still_undecided_returns_the_same_referral(self, uow_factory):
        consent = LedgerConsent(lose=1)

        with pytest.raises(ConnectionError):
            raise_(uow_factory, consent, idempotency_key="k1")
        retried = raise_(uow_factory, consent, idempotency_key="k1")

        assert retried["status"] == "awaiting_consent"
        assert [r["id"] for r in handlers.list_referrals(uow_factory(), STAFF)] == [retried["id"]]
        assert [e["type"] for e in events(uow_factory)] == ["pont.referral.raised.v1", "pont.referral.held.v1"]


class TestUndecidedSweep:
    """A referral committed, then left undecided by a crash or a consent outage, is decided by the sweep."""

    def sweep(self, uow_factory, consent, minutes_later: float) -> int:
        later = NOW + timedelta(minutes=minutes_later)
        return handlers.decide_undecided(uow_factory(), consent=consent, clock=lambda: later,
                                         older_than=timedelta(minutes=1))

    def test_is_sent_once_by_the_sweep_after_the_raisers_reply_was_lost(self, uow_factory):
        consent = LedgerConsent({"contact"}, lose=1)
        with pytest.raises(ConnectionError):
            raise_(uow_factory, consent)

        assert self.sweep(uow_factory, consent, minutes_later=0.5) == 0   # its raiser may still be deciding it
        assert self.sweep(uow_factory, consent, minutes_later=2) == 1
        assert self.sweep(uow_factory, consent, minutes_later=3) == 0

        [referral] = handlers.list_referrals(uow_factory(), STAFF)
        assert referral["status"] == "sent" and [s["status"] for s in referral["history"]] == ["sent"]
        assert consent.ledger == ["d1"]
        assert [e["type"] for e in events(uow_factory)].count("pont.disclosure.delivered.v1") == 1

    def test_is_held_when_consent_denies_and_left_for_the_next_sweep_while_consent_is_down(self, uow_factory):
        with pytest.raises(ConnectionError):
            raise_(uow_factory, LedgerConsent(lose=1))
        down = ConsentGoneAfterFirstQuestion()
        down.requests.append("a question before the outage")   # every question from now on fails

        assert self.sweep(uow_factory, down, minutes_later=2) == 0
        assert self.sweep(uow_factory, FakeConsent(), minutes_later=3) == 1
        [referral] = handlers.list_referrals(uow_factory(), STAFF)
        assert [step["status"] for step in referral["history"]] == ["awaiting_consent"]   # held, in its chronology

    def test_leaves_a_held_referral_to_consent_granted(self, uow_factory):
        raise_(uow_factory, FakeConsent())
        consent = FakeConsent({"contact"})

        assert self.sweep(uow_factory, consent, minutes_later=10) == 0
        assert consent.requests == []


class TestConsentGranted:
    def test_releases_the_held_referral_it_covers(self, uow_factory):
        held = raise_(uow_factory, FakeConsent())
        consent = FakeConsent({"contact", "health_wellbeing"})

        released = handlers.on_consent_granted(uow_factory(), granted(held), consent=consent, clock=lambda: NOW)

        assert released == 1
        view = handlers.get_referral(uow_factory(), held["id"], STAFF)
        assert [s["status"] for s in view["history"]] == ["awaiting_consent", "sent"]

    def test_consent_is_asked_with_no_transaction_open(self, uow_factory, database):
        held = raise_(uow_factory, FakeConsent())
        open_connections = []
        consent = LedgerConsent({"contact"}, during=lambda _request: open_connections.append(
            database.pool.checkedout()))

        handlers.on_consent_granted(uow_factory(), granted(held), consent=consent, clock=lambda: NOW)

        assert open_connections == [0]

    def test_the_raisers_second_question_and_a_consent_granted_at_the_same_moment_disclose_once(self, uow_factory):
        questions = []

        def parent_consents_meanwhile(request):
            questions.append(request["idempotency_key"])
            if len(questions) == 2:   # the raiser's question asked again is in flight when the grant is handled
                consent.allowed = {"contact"}
                handlers.on_consent_granted(uow_factory(), granted(request), consent=consent, clock=lambda: NOW)

        consent = LedgerConsent(during=parent_consents_meanwhile)
        raised = raise_(uow_factory, consent)

        assert len(questions) == 3 and raised["status"] == "sent"
        assert len(consent.ledger) == 1   # asked twice with something allowed, disclosed once
        delivered = [e for e in events(uow_factory) if e["type"] == "pont.disclosure.delivered.v1"]
        assert [e["data"]["disclosure_id"] for e in delivered] == consent.ledger

    def test_a_redelivery_after_a_lost_reply_sends_it_with_one_disclosure(self, uow_factory):
        held = raise_(uow_factory, FakeConsent())
        consent = LedgerConsent({"contact"}, lose=1)

        with pytest.raises(ConnectionError):
            handlers.on_consent_granted(uow_factory(), granted(held), consent=consent, clock=lambda: NOW)
        released = handlers.on_consent_granted(uow_factory(), granted(held), consent=consent, clock=lambda: NOW)

        assert released == 1
        assert consent.ledger == ["d1"]
        delivered = [e for e in events(uow_factory) if e["type"] == "pont.disclosure.delivered.v1"]
        assert [e["data"]["disclosure_id"] for e in delivered] == ["d1"]

    def test_a_referral_another_grant_sent_while_consent_was_asked_is_sent_once(self, uow_factory):
        held = raise_(uow_factory, FakeConsent())

        outer = LedgerConsent({"contact"})

        def another_grant_handled_meanwhile(_request):
            if not outer.requests:   # while the first grant's question is being asked
                handlers.on_consent_granted(uow_factory(), granted(held, "consent-2"),
                                            consent=LedgerConsent({"contact"}), clock=lambda: NOW)

        outer.during = another_grant_handled_meanwhile
        released = handlers.on_consent_granted(uow_factory(), granted(held), consent=outer, clock=lambda: NOW)

        assert released == 0
        view = handlers.get_referral(uow_factory(), held["id"], STAFF)
        assert [s["status"] for s in view["history"]] == ["awaiting_consent", "sent"]
        assert [e["type"] for e in events(uow_factory)].count("pont.disclosure.delivered.v1") == 1


class TestGetReferral:
    def test_the_referring_school_sees_the_pupil_and_the_recipient_sees_only_the_reference(self, uow_factory):
        sent = raise_(uow_factory, FakeConsent({"contact"}))

        school = handlers.get_referral(uow_factory(), sent["id"], STAFF)
        agency = handlers.get_referral(uow_factory(), sent["id"], {"sub": "n1", "org": "health:1",
                                                                    "roles": ["school_nurse"]})

        assert school["child"] == command().child.model_dump(mode="json")
        assert school["requested_categories"] == ["contact", "health_wellbeing"]
        assert agency["child_ref"] == sent["child_ref"]
        assert {"child", "reason", "details"}.isdisjoint(agency)


class TestFindChildren:
    def test_by_name_finds_each_pupil_once_with_the_latest_details_most_recently_referred_first(self, uow_factory):
        sian = {"upn": make_upn(7), "given_name": "Siân", "family_name": "Ap Rhys", "date_of_birth": "2014-01-02"}
        raise_(uow_factory, FakeConsent(), serial=7, child=sian, service="camhs")
        raise_(uow_factory, FakeConsent(), serial=8)  # Ffion Jones
        raise_(uow_factory, FakeConsent(), child={**sian, "family_name": "Rhys"}, service="youth_work")

        found = handlers.find_children(uow_factory(), STAFF, name="sian rh")
        everyone = handlers.find_children(uow_factory(), STAFF, name="j")

        assert [(c["given_name"], c["family_name"], c["referrals"]) for c in found] == [("Siân", "Rhys", 2)]
        assert [c["given_name"] for c in everyone] == ["Ffion"]

    def test_by_reference_finds_only_the_callers_schools_pupil(self, uow_factory):
        raised = raise_(uow_factory, FakeConsent())

        own = handlers.find_children(uow_factory(), STAFF, child_ref=raised["child_ref"])
        other = handlers.find_children(uow_factory(), {**STAFF, "org": "school:2"}, child_ref=raised["child_ref"])

        assert [(c["child_ref"], c["upn"]) for c in own] == [(raised["child_ref"], make_upn(1))] and other == []

    def test_only_a_school_asks(self, uow_factory):
        with pytest.raises(Forbidden):
            handlers.find_children(uow_factory(), {"sub": "n1", "org": "health:1", "roles": ["school_nurse"]},
                                   name="Jones")


class TestAgencyDecided:
    def test_moves_the_referral_and_ignores_another_org(self, uow_factory):
        sent = raise_(uow_factory, FakeConsent({"contact"}))
        decided = dict(subject_kind="referral", subject_id=sent["id"], child_ref=sent["child_ref"], by="n1")

        handlers.on_agency_decided(uow_factory(), AgencyDecided(org="health:2", decision="accepted", **decided), NOW)
        handlers.on_agency_decided(uow_factory(), AgencyDecided(org="health:1", decision="accepted", **decided), NOW)

        view = handlers.get_referral(uow_factory(), sent["id"], STAFF)
        assert [s["status"] for s in view["history"]] == ["sent", "accepted"]

    def test_a_close_that_overtook_the_accept_is_retried(self, uow_factory):
        sent = raise_(uow_factory, FakeConsent({"contact"}))

        with pytest.raises(handlers.NotYetApplicable):
            handlers.on_agency_decided(uow_factory(), AgencyDecided(
                subject_kind="referral", subject_id=sent["id"], child_ref=sent["child_ref"], org="health:1",
                by="n1", decision="closed"), NOW)


class TestOverdue:
    def test_marks_once_and_emits_referral_overdue(self, uow_factory):
        sent = raise_(uow_factory, FakeConsent({"contact"}))
        later = lambda: NOW + timedelta(days=5)  # noqa: E731

        assert handlers.mark_overdue(uow_factory(), clock=later) == 1
        assert handlers.mark_overdue(uow_factory(), clock=later) == 0
        overdue = [e for e in events(uow_factory) if e["type"] == "pont.referral.overdue.v1"]
        assert [e["data"]["referral_id"] for e in overdue] == [sent["id"]]


class TestOpenInvolvement:
    def test_the_schools_open_referrals_by_child_as_codes_only(self, uow_factory):
        from pont_shared.identity import child_ref

        held = raise_(uow_factory, FakeConsent(), serial=1)
        sent = raise_(uow_factory, FakeConsent(["contact"]), serial=2, service="camhs")
        gone = raise_(uow_factory, FakeConsent(), serial=3)
        handlers.withdraw_referral(uow_factory(), gone["id"], STAFF, clock=lambda: NOW)
        raise_(uow_factory, FakeConsent(), serial=4, caller={**STAFF, "org": "school:2"})
        refs = [child_ref(make_upn(n), SECRET) for n in (1, 2, 3, 4, 5)]

        found = handlers.open_involvement(uow_factory(), InvolvementQuery(child_refs=refs),
                                          {**STAFF, "roles": ["transition_lead"]})

        assert {ref: [referral.wire() for referral in referrals] for ref, referrals in found.items()} == {
            held["child_ref"]: [{"service": "school_nursing", "to_org": "health:1", "status": "awaiting_consent",
                                 "since": "2026-11-23"}],
            sent["child_ref"]: [{"service": "camhs", "to_org": "health:1", "status": "sent", "since": "2026-11-23"}],
        }

    def test_only_a_school_asks(self, uow_factory):
        with pytest.raises(Forbidden):
            handlers.open_involvement(uow_factory(), InvolvementQuery(child_refs=["c_1"]),
                                      {"sub": "h", "org": "health:1", "roles": ["dsl"]})
