"""A transition's disclosures are in consent's ledger once, and only for records that were stored.

Real RabbitMQ and PostgreSQL; the real consent service and its ledger. Two transitions
containers share one database: `hasty` gives consent almost no time to answer (its RPC
deadline passes while consent is still recording the disclosures), as a crash between asking
consent and recording the send would; `steady` is an ordinary one, whose sweep completes
sends left unrecorded. Each test has its own pair of schools, so tests share the databases.
"""
from __future__ import annotations

import dataclasses
import random
import uuid
from datetime import date, timedelta

import pytest
from nameko.containers import ServiceContainer
from nameko.exceptions import RemoteError
from nameko.standalone.rpc import ServiceRpcProxy
from sqlalchemy import create_engine, text

from consent.service import ConsentService
from pont_shared.config import Settings
from pont_shared.contract.errors import Invalid
from pont_shared.identity import make_upn
from pont_shared.messaging.rpc import RpcProxy
from pont_shared.testing import AMQP_URI, agreement_in_force, fresh_database, signed, wait_until
from pont_shared.testing.fixtures import delete_queues
from transitions.service import TransitionsService

pytestmark = pytest.mark.integration

PUPILS = 4


def _settings(service: str, database_url: str) -> Settings:
    env = {"AMQP_URI": AMQP_URI, "PONT_OUTBOX_POLL_SECONDS": "0.1", "PONT_LOG_LEVEL": "WARNING"}
    return dataclasses.replace(Settings.from_env(service, env), database_url=database_url)


def _start(cls, name: str, settings: Settings, extra: dict | None = None, **attrs) -> ServiceContainer:
    container = ServiceContainer(type(cls.__name__, (cls,), {"name": name, **attrs}),
                                 {**settings.nameko_config(), **(extra or {})})
    container.start()
    return container


@pytest.fixture(scope="module")
def stack():
    run = uuid.uuid4().hex[:8]
    names = {"consent": f"consent_{run}", "steady": f"transitions_{run}", "hasty": f"transitions_hasty_{run}"}
    containers = []
    with fresh_database("pont_txl_consent") as consent_db, fresh_database("pont_txl_transitions") as transitions_db:
        try:
            containers.append(_start(ConsentService, names["consent"], _settings("consent", consent_db)))
            containers.append(_start(
                TransitionsService, names["steady"], _settings("transitions", transitions_db),
                {"TRANSITIONS_UNSENT_AFTER_SECONDS": 0.5, "PONT_TRANSITIONS_UNSENT_SECONDS": 0.2},
                consent=RpcProxy(names["consent"]), referrals=RpcProxy(f"referrals_absent_{run}")))
            containers.append(_start(
                TransitionsService, names["hasty"], _settings("transitions", transitions_db),
                {"PONT_RPC_TIMEOUT_SECONDS": 0.001, "PONT_TRANSITIONS_UNSENT_SECONDS": 3600},
                consent=RpcProxy(names["consent"]), referrals=RpcProxy(f"referrals_absent_{run}")))
            yield {"names": names, "config": {"AMQP_URI": AMQP_URI}, "consent_db": create_engine(consent_db),
                   "transitions_db": create_engine(transitions_db)}
        finally:
            for container in reversed(containers):
                container.stop()
                delete_queues(container)


def _school() -> str:
    return f"school:6{random.randint(10, 99)}{random.randint(0, 9999):04d}"


@pytest.fixture
def schools(stack):
    """A primary and a secondary with an agreement, and PUPILS pupils whose parents consented."""
    primary, secondary = _school(), _school()
    pupils = [{"child": {"upn": make_upn(n, prefix=str(random.randint(700, 999))), "given_name": f"Given{n}",
                         "family_name": f"Family{n}", "date_of_birth": "2014-05-03"},
               "sections": {"attendance": {"year": 2025, "sessions_possible": 380, "sessions_authorised": 4,
                                          "sessions_unauthorised": 1}}} for n in range(PUPILS)]
    with ServiceRpcProxy(stack["names"]["consent"], stack["config"]) as consent:
        agreement_in_force(consent, {
            "parties": [primary, secondary], "purposes": ["transition"], "categories": ["education", "attendance"],
            "valid_from": str(date.today() - timedelta(days=1)), "valid_to": str(date.today() + timedelta(days=400)),
        })
        for p in pupils:
            consent.record_consent({
                "child": {"upn": p["child"]["upn"], "date_of_birth": p["child"]["date_of_birth"]},
                "given_by": {"name": "Parent", "relationship": "parent"}, "recipients": [secondary],
                "purposes": ["transition"], "evidence": "written", "categories": ["education", "attendance"],
            }, signed({"sub": "staff1", "org": primary, "roles": ["school_staff"]}))
    return {"primary": primary, "secondary": secondary, "pupils": pupils}


def prepare(stack, which: str, schools, key: str | None, sub: str = "lead1"):
    request = {"to_school": schools["secondary"], "pupils": schools["pupils"], "send": True}
    caller = signed({"sub": sub, "org": schools["primary"], "roles": ["transition_lead"]})
    with ServiceRpcProxy(stack["names"][which], stack["config"]) as transitions:
        return transitions.prepare(request, caller, key)


def ledger_entries(stack, to_org: str) -> dict[str, int]:
    """subject_id → how many ledger entries name it, of the disclosures to `to_org`."""
    with stack["consent_db"].connect() as conn:
        rows = conn.execute(text("SELECT subject_id, count(*) FROM disclosure_ledger WHERE to_org = :to "
                                 "GROUP BY subject_id"), {"to": to_org}).all()
    return dict(rows)


def statuses(stack, from_school: str) -> dict[str, str]:
    with stack["transitions_db"].connect() as conn:
        rows = conn.execute(text("SELECT id, status FROM transitions WHERE from_school = :s"), {"s": from_school})
        return dict(rows.all())


class TestRecordsThatCannotBeStored:
    def test_leave_no_disclosure_in_the_ledger(self, stack, schools):
        too_long_for_prepared_by = "lead-" + "x" * 140   # a valid caller (≤ 200), longer than the column (120)

        with pytest.raises(RemoteError):
            prepare(stack, "steady", schools, str(uuid.uuid4()), sub=too_long_for_prepared_by)

        assert statuses(stack, schools["primary"]) == {}
        assert ledger_entries(stack, schools["secondary"]) == {}


class TestTheSameRequestTwice:
    def test_records_each_pupils_disclosure_once(self, stack, schools):
        key = str(uuid.uuid4())

        first = prepare(stack, "steady", schools, key)
        second = prepare(stack, "steady", schools, key)

        assert second == first
        assert [r["status"] for r in first] == ["sent"] * PUPILS
        assert ledger_entries(stack, schools["secondary"]) == {r["id"]: 1 for r in first}


class TestASendLeftUnrecordedAfterConsentAnswered:
    def test_the_retry_completes_it_with_each_disclosure_in_the_ledger_once(self, stack, schools):
        key = str(uuid.uuid4())
        with pytest.raises(RemoteError, match="RpcTimeout"):
            prepare(stack, "hasty", schools, key)
        wait_until(lambda: len(ledger_entries(stack, schools["secondary"])) == PUPILS, timeout=10,
                   message="consent records the disclosures it was asked for")
        left = statuses(stack, schools["primary"])

        retried = prepare(stack, "steady", schools, key)

        assert set(left.values()) <= {"prepared", "sent"} and len(left) == PUPILS
        assert [r["status"] for r in retried] == ["sent"] * PUPILS
        assert {r["id"] for r in retried} == set(left)
        assert ledger_entries(stack, schools["secondary"]) == {r["id"]: 1 for r in retried}

    def test_without_a_retry_the_sweep_completes_it_once(self, stack, schools):
        with pytest.raises(RemoteError, match="RpcTimeout"):
            prepare(stack, "hasty", schools, None)
        wait_until(lambda: len(ledger_entries(stack, schools["secondary"])) == PUPILS, timeout=10,
                   message="consent records the disclosures it was asked for")

        sent = wait_until(lambda: (s := statuses(stack, schools["primary"])) and set(s.values()) == {"sent"} and s,
                          timeout=15, message="the sweep sends the records left unsent")

        assert len(sent) == PUPILS
        assert ledger_entries(stack, schools["secondary"]) == {record_id: 1 for record_id in sent}


class TestAMalformedRequest:
    """prepare parses its request through the shared contract (pont_shared.contract.rpc.transitions)."""

    def test_is_refused_naming_each_field_and_stores_and_discloses_nothing(self, stack, schools):
        caller = signed({"sub": "lead1", "org": schools["primary"], "roles": ["transition_lead"]})
        pupil = schools["pupils"][0]
        bad = {"to_school": "nowhere", "send": True, "pupils": [{
            "child": {**pupil["child"], "date_of_birth": "not a date"},
            "sections": {"attendance": {"year": 2025, "sessions_possible": -1, "sessions_authorised": 4,
                                        "sessions_unauthorised": 1}}}]}

        with ServiceRpcProxy(stack["names"]["steady"], stack["config"]) as transitions:
            with pytest.raises(Invalid) as refused:
                transitions.prepare(bad, caller, str(uuid.uuid4()))
            with pytest.raises(Invalid) as not_an_object:
                transitions.prepare(["not", "a", "request"], caller)

        assert sorted(error["field"] for error in refused.value.errors) == [
            "pupils.0.child.date_of_birth", "pupils.0.sections.attendance.sessions_possible", "to_school"]
        assert pupil["child"]["given_name"] not in str(refused.value.errors)
        assert [error["field"] for error in not_an_object.value.errors] == ["body"]
        assert statuses(stack, schools["primary"]) == {}
        assert ledger_entries(stack, schools["secondary"]) == {}
