"""The consent service container against the real RabbitMQ and PostgreSQL."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from nameko.standalone.rpc import ServiceRpcProxy
from nameko.testing.services import entrypoint_hook
from prometheus_client import REGISTRY
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from consent.service import ConsentService
from pont_shared.config import DEV_CHILD_REF_SECRET
from pont_shared.contract.errors import Forbidden, Invalid, NotFound
from pont_shared.identity import child_ref, make_upn
from pont_shared.messaging.wire import WireObserver
from pont_shared.testing import agreement_in_force, signed, wait_until

pytestmark = pytest.mark.integration

SCHOOL, HEALTH, SOCIAL = "school:6612001", "health:cardiff-vale", "social_care:cardiff"
STAFF = {"sub": "staff1", "org": SCHOOL, "roles": ["school_staff"]}
DSL = {"sub": "dsl1", "org": SCHOOL, "roles": ["dsl"]}
ADMIN = {"sub": "admin1", "org": "local_authority:cardiff", "roles": ["admin"]}
VERIFY = str(Path(sys.executable).with_name("pont-verify-ledger"))


class FakeClock:
    """The service's clock, moved by the test instead of by sleeping."""

    def __init__(self):
        self.at = datetime.now(UTC)

    def now(self) -> datetime:
        return self.at

    def advance(self, **delta) -> None:
        self.at += timedelta(**delta)


class Consent:
    """The running service, its database and an RPC client."""

    def __init__(self, container, url, broker_url, clock):
        self.container, self.url, self.clock = container, url, clock
        self.rpc_context = ServiceRpcProxy(container.service_name, {"AMQP_URI": broker_url})
        self.rpc = self.rpc_context.__enter__()
        self.engine = create_engine(url, isolation_level="AUTOCOMMIT")

    def close(self):
        self.rpc_context.__exit__(None, None, None)
        self.engine.dispose()

    def sql(self, statement: str, **params):
        with self.engine.connect() as db:
            return db.execute(text(statement), params)

    def agreement(self, parties=(SCHOOL, HEALTH), purposes=("referral",),
                  categories=("contact", "health_wellbeing", "aln")):
        today = self.clock.now().date()
        return agreement_in_force(self.rpc, {
            "parties": list(parties), "purposes": list(purposes), "categories": list(categories),
            "valid_from": (today - timedelta(days=30)).isoformat(),
            "valid_to": (today + timedelta(days=365)).isoformat()}, proposer=ADMIN["org"])

    def consent(self, upn=None, categories=("contact", "health_wellbeing"), expires_on=None, **extra):
        upn = upn or make_upn(uuid.uuid4().int % 10**9)
        body = {"child": {"upn": upn, "given_name": "Ffion", "family_name": "Jones", "date_of_birth": "2015-04-12"},
                "given_by": {"name": "Rhian Jones", "relationship": "parent"}, "recipients": [HEALTH],
                "purposes": ["referral"], "categories": list(categories), "evidence": "written",
                "expires_on": expires_on, **extra}
        return self.rpc.record_consent(body, signed(STAFF))

    def ask(self, ref, categories=("contact",), caller=STAFF, **extra):
        return {"child_ref": ref, "from_org": SCHOOL, "to_org": HEALTH, "purpose": "referral",
                "categories": list(categories), "caller": signed(caller), **extra}


@pytest.fixture
def consent(start_service, make_settings, postgres_url, broker_url, service_name):
    clock = FakeClock()
    container = start_service(ConsentService, make_settings(service_name, postgres_url), name=service_name,
                              extra_config={"PONT_CLOCK": clock.now})
    service = Consent(container, postgres_url, broker_url, clock)
    yield service
    service.close()


@pytest.fixture
def observer(broker_url):
    watcher = WireObserver(broker_url, bindings=[("pont.events", "pont.consent.#"),
                                                 ("pont.events", "pont.disclosure.#")])
    yield watcher
    watcher.close()


def allowed(decision) -> dict[str, bool]:
    return {d["category"]: d["allowed"] for d in decision["decisions"]}


class TestWithdrawConsent:
    def test_a_withdrawal_is_on_the_broker_within_a_second_and_the_next_decision_denies(self, consent, observer):
        consent.agreement()
        given = consent.consent()
        shared = consent.rpc.share({**consent.ask(given["child_ref"]), "subject_kind": "referral",
                                    "subject_id": "r-1"})
        assert shared["disclosure_id"] and allowed(shared) == {"contact": True}

        started = time.monotonic()
        result = consent.rpc.withdraw_consent(given["id"], "parent changed their mind", signed(STAFF))
        observer.wait_for(lambda seen: any(e.type == "pont.consent.withdrawn.v1" for e in seen), timeout=1.0)
        took = time.monotonic() - started

        assert result == {"id": given["id"], "status": "withdrawn"}
        assert took < 1.0
        event = observer.of_type("pont.consent.withdrawn.v1")[0]
        assert event.subject == given["child_ref"]
        assert event.data["consent_id"] == given["id"] and event.data["recipients"] == [HEALTH]
        assert b"Ffion" not in b"".join(observer.raw) and b"Rhian" not in b"".join(observer.raw)
        later = consent.rpc.decide(consent.ask(given["child_ref"]))
        assert allowed(later) == {"contact": False}
        assert "withdrawn" in later["decisions"][0]["reason"]
        kinds = [e["kind"] for e in consent.rpc.disclosures(given["child_ref"], signed(DSL))]
        assert kinds == ["disclosure", "withdrawal"]
        assert REGISTRY.get_sample_value("pont_consent_withdrawals_total") >= 1

    def test_every_recipient_of_data_resting_on_the_consent_is_named(self, consent, observer):
        consent.agreement()
        upn = make_upn(uuid.uuid4().int % 10**9)
        first = consent.consent(upn=upn, categories=("contact",))
        second = consent.consent(upn=upn, categories=("health_wellbeing",))
        shared = consent.rpc.share({**consent.ask(first["child_ref"], ("contact", "health_wellbeing")),
                                    "subject_kind": "referral", "subject_id": "r-2"})
        assert allowed(shared) == {"contact": True, "health_wellbeing": True}

        consent.rpc.withdraw_consent(second["id"], "changed mind", signed(STAFF))

        seen = observer.wait_for(lambda seen: any(e.type == "pont.consent.withdrawn.v1" for e in seen))
        withdrawn = next(e for e in seen if e.type == "pont.consent.withdrawn.v1")
        assert withdrawn.data["consent_id"] == second["id"] and withdrawn.data["recipients"] == [HEALTH]

    def test_another_organisation_cannot_withdraw_or_list_a_consent(self, consent):
        given = consent.consent()
        stranger = {"sub": "sw1", "org": SOCIAL, "roles": ["social_worker"]}

        with pytest.raises(NotFound):
            consent.rpc.withdraw_consent(given["id"], "no", signed(stranger))
        with pytest.raises(NotFound):
            consent.rpc.list_consents(given["child_ref"], signed(stranger))
        recipient = {"sub": "n1", "org": HEALTH, "roles": ["school_nurse"]}
        assert [c["id"] for c in consent.rpc.list_consents(given["child_ref"], signed(recipient))] == [given["id"]]


class TestRecordConsent:
    def test_the_child_ref_is_derived_from_the_upn_and_the_grant_is_announced(self, consent, observer):
        upn = make_upn(uuid.uuid4().int % 10**9)

        given = consent.consent(upn=upn)

        assert given["child_ref"] == child_ref(upn, DEV_CHILD_REF_SECRET) and given["status"] == "active"
        observer.wait_for(lambda seen: any(e.type == "pont.consent.granted.v1" and e.data["consent_id"] == given["id"]
                                           for e in seen))
        assert upn.encode() not in b"".join(observer.raw)

    @pytest.mark.parametrize("extra,field_name", [
        ({"expires_on": "2020-01-01"}, "expires_on"),
        ({"categories": ["contact", "shoe_size"]}, "categories.1"),
        ({"given_by": {"name": "Ffion", "relationship": "self"}}, "competence_assessed"),
    ])
    def test_a_rule_broken_is_invalid_naming_the_field(self, consent, extra, field_name):
        with pytest.raises(Invalid) as refused:
            consent.consent(**extra)

        assert [e["field"] for e in refused.value.errors] == [field_name]

    def test_the_same_idempotency_key_records_once(self, consent):
        body = {"child": {"upn": make_upn(7), "date_of_birth": "2015-04-12"},
                "given_by": {"name": "R", "relationship": "carer"}, "recipients": [HEALTH],
                "purposes": ["referral"], "categories": ["contact"], "evidence": "verbal"}
        key = uuid.uuid4().hex

        first = consent.rpc.record_consent(body, signed(STAFF), key)
        second = consent.rpc.record_consent(body, signed(STAFF), key)

        assert first == second
        assert consent.sql("SELECT count(*) FROM consents").scalar() == 1


class TestShare:
    def test_one_key_discloses_once_and_an_answer_that_shared_nothing_is_decided_afresh(self, consent):
        consent.agreement()
        upn = make_upn(uuid.uuid4().int % 10**9)
        ref = child_ref(upn, DEV_CHILD_REF_SECRET)

        def question():
            return {**consent.ask(ref), "subject_kind": "referral", "subject_id": "r-once",
                    "idempotency_key": "referral:r-once"}

        held = consent.rpc.share(question())            # no consent yet: nothing shared, nothing kept
        consent.consent(upn=upn)
        shared = consent.rpc.share(question())          # asked again under the same key: decided afresh
        again = consent.rpc.share(question())           # and now answered from the record

        assert held["disclosure_id"] is None and allowed(held) == {"contact": False}
        assert shared["disclosure_id"] and again == shared
        kinds = [e["kind"] for e in consent.rpc.disclosures(ref, signed(DSL))]
        assert kinds.count("disclosure") == 1

    def test_a_question_that_shared_is_answered_as_the_first_time_after_its_consent_is_withdrawn(self, consent):
        consent.agreement()
        upn = make_upn(uuid.uuid4().int % 10**9)
        ref = child_ref(upn, DEV_CHILD_REF_SECRET)
        given = consent.consent(upn=upn)
        question = {**consent.ask(ref), "subject_kind": "referral", "subject_id": "r-withdrawn",
                    "idempotency_key": "referral:r-withdrawn"}

        shared = consent.rpc.share(question)
        consent.rpc.withdraw_consent(given["id"], "parent changed their mind", signed(STAFF))
        again = consent.rpc.share(question)             # the same question, retried: what was shared stays shared
        other = consent.rpc.share({**question, "subject_id": "r-after", "idempotency_key": "referral:r-after"})

        assert shared["disclosure_id"] and again == shared
        assert other["disclosure_id"] is None and allowed(other) == {"contact": False}

    def test_a_statutory_share_by_a_dsl_is_recorded_and_flagged(self, consent, observer):
        consent.agreement()
        ref = child_ref(make_upn(uuid.uuid4().int % 10**9), DEV_CHILD_REF_SECRET)

        shared = consent.rpc.share({**consent.ask(ref, ("contact", "aln"), caller=DSL), "basis": "safeguarding",
                                    "justification": "bruising seen today", "subject_kind": "referral",
                                    "subject_id": "r-9"})

        assert shared["flagged_for_review"] is True and allowed(shared) == {"contact": True, "aln": True}
        entry, = consent.rpc.disclosures(ref, signed(DSL))
        assert entry["basis"] == "safeguarding" and entry["flagged_for_review"]
        assert entry["id"] == shared["disclosure_id"]
        recorded = observer.wait_for(lambda seen: any(e.type == "pont.disclosure.recorded.v1" for e in seen))
        assert not any(b"bruising" in raw for raw in observer.raw), recorded

    def test_a_statutory_basis_from_a_non_dsl_is_forbidden_and_without_justification_invalid(self, consent):
        consent.agreement()
        ref = child_ref(make_upn(3), DEV_CHILD_REF_SECRET)

        with pytest.raises(Forbidden):
            consent.rpc.share({**consent.ask(ref), "basis": "safeguarding", "justification": "x",
                               "subject_kind": "referral", "subject_id": "r"})
        with pytest.raises(Invalid) as refused:
            consent.rpc.decide({**consent.ask(ref, caller=DSL), "basis": "legal_obligation"})

        assert refused.value.errors[0]["field"] == "justification"
        assert consent.sql("SELECT count(*) FROM disclosure_ledger").scalar() == 0

    def test_a_malformed_request_is_refused_naming_the_field_and_records_nothing(self, consent):
        consent.agreement()
        given = consent.consent()
        good = {**consent.ask(given["child_ref"]), "subject_kind": "referral", "subject_id": "r-1"}

        with pytest.raises(Invalid) as refused:
            consent.rpc.share({**good, "purpose": "curiosity", "categories": ["contact", "shoe_size"]})
        with pytest.raises(Invalid) as refused_in_a_batch:
            consent.rpc.share_many([good, {**good, "subject_id": None}])
        with pytest.raises(Invalid) as unknown_field:
            consent.rpc.decide({**consent.ask(given["child_ref"]), "basis_of": "safeguarding"})

        assert [e["field"] for e in refused.value.errors] == ["purpose", "categories.1"]
        assert "curiosity" not in str(refused.value.errors)
        assert [e["field"] for e in refused_in_a_batch.value.errors] == ["requests.1.subject_id"]
        assert [e["field"] for e in unknown_field.value.errors] == ["basis_of"]
        assert consent.sql("SELECT count(*) FROM disclosure_ledger").scalar() == 0
        assert consent.sql("SELECT count(*) FROM idempotency_keys").scalar() == 0
        assert consent.sql("SELECT count(*) FROM outbox WHERE event_type = 'pont.disclosure.recorded.v1'").scalar() == 0

    def test_a_batch_is_shared_in_one_transaction_and_answered_in_order(self, consent):
        consent.agreement()
        given = consent.consent()
        unknown = child_ref(make_upn(11), DEV_CHILD_REF_SECRET)
        requests = [{**consent.ask(ref), "subject_kind": "transition", "subject_id": f"t-{i}"}
                    for i, ref in enumerate([given["child_ref"], unknown, given["child_ref"]])]

        results = consent.rpc.share_many(requests)
        asked = consent.rpc.decide_many([consent.ask(unknown), consent.ask(given["child_ref"])])

        assert [bool(r["disclosure_id"]) for r in results] == [True, False, True]
        assert [allowed(a) for a in asked] == [{"contact": False}, {"contact": True}]
        assert consent.sql("SELECT count(*) FROM disclosure_ledger").scalar() == 2

    def test_nothing_allowed_records_nothing(self, consent):
        given = consent.consent()

        shared = consent.rpc.share({**consent.ask(given["child_ref"]), "subject_kind": "referral", "subject_id": "r"})

        assert shared["disclosure_id"] is None and allowed(shared) == {"contact": False}
        assert "agreement" in shared["decisions"][0]["reason"]

    def test_concurrent_shares_make_one_unbroken_chain(self, consent):
        consent.agreement()
        given = consent.consent()

        pending = [consent.rpc.share.call_async({**consent.ask(given["child_ref"]), "subject_kind": "referral",
                                                 "subject_id": f"r-{i}"}) for i in range(12)]
        results = [p.result() for p in pending]

        assert all(r["disclosure_id"] for r in results)
        seqs = [row.seq for row in consent.sql("SELECT seq FROM disclosure_ledger ORDER BY seq")]
        assert seqs == list(range(1, 13))
        check = subprocess.run([VERIFY, "--database-url", consent.url], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr


class TestBatchShare:
    """`share_many` does its reading once per batch: the answers and the chain must not notice."""

    def test_a_batch_of_hundreds_makes_a_verifiable_chain_and_decides_as_single_shares_do(self, consent):
        school_b = "school:6614002"
        consent.agreement(parties=(SCHOOL, HEALTH), categories=("contact", "health_wellbeing", "aln"))
        consent.agreement(parties=(school_b, SOCIAL), categories=("contact", "family_context"))
        consent.agreement(parties=(SCHOOL, HEALTH), purposes=("appointment",), categories=("contact",))
        children = [make_upn(uuid.uuid4().int % 10**9) for _ in range(60)]
        refs = [child_ref(upn, DEV_CHILD_REF_SECRET) for upn in children]
        given = {}
        for i, upn in enumerate(children):
            if i % 3 == 0:
                continue                                   # no consent at all
            given[i] = consent.consent(upn=upn, categories=("contact",) if i % 3 == 1 else ("contact", "aln"))
        for i in list(given)[::7]:
            consent.rpc.withdraw_consent(given[i]["id"], "changed mind", signed(STAFF))
        shapes = [
            lambda ref: consent.ask(ref, ("contact", "aln")),
            lambda ref: consent.ask(ref, ("contact", "health_wellbeing", "family_context")),
            lambda ref: consent.ask(ref, ("aln",), caller=DSL, basis="safeguarding", justification="seen today"),
            lambda ref: {**consent.ask(ref, ("contact",)), "from_org": school_b, "to_org": SOCIAL},
            lambda ref: {**consent.ask(ref, ("contact",)), "purpose": "appointment"},
        ]
        requests = [{**shapes[n % len(shapes)](refs[n % len(refs)]), "subject_kind": "transition",
                     "subject_id": f"t-{n}"} for n in range(300)]
        before = consent.sql("SELECT count(*) FROM disclosure_ledger").scalar()

        batch = consent.rpc.share_many(requests)
        singles = [p.result() for p in [consent.rpc.share.call_async(r) for r in requests]]

        def decided(result):
            return result["decisions"], result["flagged_for_review"], bool(result["disclosure_id"])

        assert [decided(r) for r in batch] == [decided(r) for r in singles]
        outcomes = {d["allowed"] for r in batch for d in r["decisions"]}
        bases = {d["basis"] for r in batch for d in r["decisions"]}
        assert outcomes == {True, False} and bases == {"consent", "safeguarding", None}
        recorded = [r["disclosure_id"] for r in batch if r["disclosure_id"]]
        rows = consent.sql("SELECT seq, id, child_ref, to_org, subject_id FROM disclosure_ledger "
                           "WHERE seq > :before ORDER BY seq", before=before).all()
        assert [row.seq for row in rows] == list(range(before + 1, before + 1 + 2 * len(recorded)))
        assert [row.id for row in rows[:len(recorded)]] == recorded     # the batch's entries, in request order
        asked = {r["subject_id"]: r for r in requests}
        assert all((row.child_ref, row.to_org) == (asked[row.subject_id]["child_ref"], asked[row.subject_id]["to_org"])
                   for row in rows)
        check = subprocess.run([VERIFY, "--database-url", consent.url], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        assert f"{before + 2 * len(recorded)} entries verified" in check.stdout


class TestLedgerIsAppendOnly:
    @pytest.fixture
    def shared(self, consent):
        consent.agreement()
        given = consent.consent()
        for i in range(3):
            consent.rpc.share({**consent.ask(given["child_ref"]), "subject_kind": "referral", "subject_id": f"r{i}"})
        return consent

    @pytest.mark.parametrize("statement", [
        "UPDATE disclosure_ledger SET to_org = 'social_care:cardiff' WHERE seq = 2",
        "DELETE FROM disclosure_ledger WHERE seq = 3",
        "TRUNCATE disclosure_ledger",
    ])
    def test_postgresql_refuses_a_change_issued_directly(self, shared, statement):
        with pytest.raises(DBAPIError, match="append-only"):
            shared.sql(statement)

        assert shared.sql("SELECT count(*) FROM disclosure_ledger").scalar() == 3

    def test_the_verify_command_finds_an_entry_altered_behind_the_applications_back(self, shared):
        intact = subprocess.run([VERIFY, "--database-url", shared.url], capture_output=True, text=True)
        assert intact.returncode == 0, intact.stderr

        shared.sql("ALTER TABLE disclosure_ledger DISABLE TRIGGER disclosure_ledger_append_only")
        shared.sql("UPDATE disclosure_ledger SET to_org = 'social_care:cardiff' WHERE seq = 2")
        shared.sql("ALTER TABLE disclosure_ledger ENABLE TRIGGER disclosure_ledger_append_only")
        altered = subprocess.run([VERIFY, "--database-url", shared.url], capture_output=True, text=True,
                                 env={**os.environ, "PONT_LOG_LEVEL": "WARNING"})

        assert altered.returncode == 1
        assert "seq=2" in altered.stderr


class TestExpiry:
    def test_the_timer_expires_a_lapsed_consent_and_announces_it(self, consent, observer):
        consent.agreement()
        today = consent.clock.now().date()
        given = consent.consent(expires_on=(today + timedelta(days=2)).isoformat())
        assert allowed(consent.rpc.decide(consent.ask(given["child_ref"]))) == {"contact": True}

        consent.clock.advance(days=3)
        with entrypoint_hook(consent.container, "expire_consents") as tick:
            expired = tick()

        assert expired == 1
        observer.wait_for(lambda seen: any(e.type == "pont.consent.expired.v1" and e.data["consent_id"] == given["id"]
                                           for e in seen))
        assert consent.rpc.list_consents(given["child_ref"], signed(STAFF))[0]["status"] == "expired"
        assert allowed(consent.rpc.decide(consent.ask(given["child_ref"]))) == {"contact": False}


def test_decisions_are_counted_by_result_and_basis(consent):
    before = REGISTRY.get_sample_value("pont_sharing_decisions_total", {"result": "denied", "basis": "none"}) or 0

    consent.rpc.decide(consent.ask(child_ref(make_upn(5), DEV_CHILD_REF_SECRET)))

    wait_until(lambda: (REGISTRY.get_sample_value(
        "pont_sharing_decisions_total", {"result": "denied", "basis": "none"}) or 0) > before)
