"""Withdrawal and expiry reach every holder: the transitions store (receiving and sending
school), and the receiving school's agency link. Real RabbitMQ, PostgreSQL and containers of
consent, transitions, referrals, the secondary's agency_link and the gateway.

The rule tested: a section rests on the consent(s) the consent service named for its category
when it was disclosed. Withdrawing (or the expiry of) that consent withholds that section from
then on, and only that section; a section disclosed on another consent stays.
"""
from __future__ import annotations

import dataclasses
import random
import uuid
from datetime import date, timedelta

import pytest
import requests
from nameko.containers import ServiceContainer
from nameko.standalone.rpc import ServiceRpcProxy
from sqlalchemy import create_engine, text

from agency_link.service import AgencyLinkService
from consent.service import ConsentService
from gateway.service import GatewayService
from pont_shared.config import Settings, safe_name
from pont_shared.identity import child_ref, make_upn
from pont_shared.messaging.rpc import RpcProxy
from pont_shared.testing import (
    AMQP_URI,
    MovableClock,
    agreement_in_force,
    bearer,
    fresh_database,
    http_url,
    signed,
    wait_until,
    web_address,
)
from pont_shared.testing.fixtures import delete_queues
from referrals.service import ReferralsService
from transitions import ctf
from transitions.handlers import record_id
from transitions.service import TransitionsService

pytestmark = pytest.mark.integration


def _school() -> str:
    return f"school:6{random.randint(10, 99)}{random.randint(0, 9999):04d}"


def _settings(service: str, database_url: str) -> Settings:
    env = {"AMQP_URI": AMQP_URI, "PONT_RETRY_DELAYS": "0.05,0.1,0.2", "PONT_OUTBOX_POLL_SECONDS": "0.1",
           "PONT_LOG_LEVEL": "WARNING"}
    return dataclasses.replace(Settings.from_env(service, env, http_port=0), database_url=database_url)


def _start(cls, name: str, settings: Settings, extra: dict | None = None, **attrs) -> ServiceContainer:
    service_cls = type(cls.__name__, (cls,), {"name": name, **attrs})
    container = ServiceContainer(service_cls, {**settings.nameko_config(), "WEB_SERVER_ADDRESS": web_address(),
                                               **(extra or {})})
    container.start()
    return container


@pytest.fixture(scope="module")
def stack():
    run = uuid.uuid4().hex[:8]
    names = {"consent": f"consent_{run}", "transitions": f"transitions_{run}", "referrals": f"referrals_{run}"}
    primary, secondary = _school(), _school()
    consent_clock = MovableClock()
    containers = []
    with fresh_database("pont_ce_consent") as consent_db, fresh_database("pont_ce_transitions") as transitions_db, \
            fresh_database("pont_ce_link") as link_db, fresh_database("pont_ce_referrals") as referrals_db:
        try:
            containers.append(_start(ConsentService, names["consent"], _settings("consent", consent_db),
                                     {"PONT_CLOCK": consent_clock, "CONSENT_EXPIRY_INTERVAL": 0.1}))
            containers.append(_start(ReferralsService, names["referrals"], _settings("referrals", referrals_db),
                                     consent=RpcProxy(names["consent"])))
            containers.append(_start(TransitionsService, names["transitions"],
                                     _settings("transitions", transitions_db),
                                     consent=RpcProxy(names["consent"]), referrals=RpcProxy(names["referrals"])))
            link = f"agency_link_{safe_name(secondary)}"
            containers.append(_start(AgencyLinkService, link, _settings(link, link_db), {"org": secondary}))
            gateway = _start(GatewayService, f"gateway_{run}", _settings("gateway", "sqlite://"),
                             transitions=RpcProxy(names["transitions"]), consent_rpc=RpcProxy(names["consent"]))
            containers.append(gateway)
            with ServiceRpcProxy(names["consent"], {"AMQP_URI": AMQP_URI}) as consent:
                agreement_in_force(consent, {
                    "parties": [primary, secondary], "purposes": ["transition"],
                    "categories": ["education", "attendance", "aln", "health_wellbeing"],
                    "valid_from": str(date.today() - timedelta(days=1)),
                    "valid_to": str(date.today() + timedelta(days=400))})
            yield {"names": names, "primary": primary, "secondary": secondary, "base": http_url(gateway),
                   "link": link, "link_db": link_db, "transitions_db": transitions_db, "consent_clock": consent_clock}
        finally:
            for container in reversed(containers):
                container.stop()
                delete_queues(container)


def pupil(n: int) -> dict:
    return {"child": {"upn": make_upn(n, prefix=str(random.randint(700, 999))), "given_name": f"Gwen{n}",
                      "family_name": f"Morgan{n}", "date_of_birth": "2014-05-03"},
            "sections": {"attendance": {"year": 2025, "sessions_possible": 380, "sessions_authorised": 4,
                                        "sessions_unauthorised": 1},
                         "aln": {"decision_outcome": "has_aln", "idp": {"maintained_by": "school"},
                                 "areas_of_need": ["SLCN"], "review_date": "2026-03-01"},
                         "wellbeing": {"notes": f"wellbeing note {n}"}}}


def record_consent(stack, p: dict, categories: list[str], expires_on: date | None = None) -> str:
    staff = {"sub": "staff1", "org": stack["primary"], "roles": ["school_staff"]}
    body = {"child": {"upn": p["child"]["upn"], "date_of_birth": p["child"]["date_of_birth"]},
            "given_by": {"name": "Parent", "relationship": "parent"}, "recipients": [stack["secondary"]],
            "purposes": ["transition"], "evidence": "written", "categories": categories,
            **({"expires_on": str(expires_on)} if expires_on else {})}
    with ServiceRpcProxy(stack["names"]["consent"], {"AMQP_URI": AMQP_URI}) as consent:
        return consent.record_consent(body, signed(staff))["id"]


def send(stack, p: dict) -> str:
    response = requests.post(f"{stack['base']}/api/v1/transitions",
                             json={"to_school": stack["secondary"], "pupils": [p], "send": True},
                             headers=bearer("lead1", stack["primary"], ["transition_lead"]), timeout=60)
    assert response.status_code == 201, response.text
    [transition_id] = response.json()["ids"]
    return transition_id


def inbox_item(stack, transition_id: str) -> dict:
    inbox = requests.get(f"{stack['base']}/api/v1/transitions/inbox",
                         headers=bearer("sec1", stack["secondary"], ["transition_lead"]), timeout=30)
    assert inbox.status_code == 200, inbox.text
    [item] = [i for i in inbox.json() if i["id"] == transition_id]
    return item


def once(value, condition):
    """`value` once `condition(value)` holds, else None (for wait_until)."""
    return value if condition(value) else None


def withheld(item: dict) -> dict[str, str]:
    return {w["section"]: w["reason"] for w in item["withheld"]}


def withdraw(stack, consent_id: str, **extra) -> None:
    response = requests.post(f"{stack['base']}/api/v1/consents/{consent_id}/withdraw",
                             json={"reason": "parent asked", **extra},
                             headers=bearer("staff1", stack["primary"], ["school_staff"]), timeout=30)
    assert response.status_code == 200, response.text


def link_copy(stack, transition_id: str) -> dict | None:
    caller = {"sub": "sec1", "org": stack["secondary"], "roles": ["transition_lead"]}
    with ServiceRpcProxy(stack["link"], {"AMQP_URI": AMQP_URI}) as link:
        return next((i for i in link.inbox("transition", signed(caller)) if i["id"] == transition_id), None)


def test_withdrawing_one_of_two_consents_withholds_exactly_the_sections_that_rested_on_it(stack):
    p = pupil(1)
    record_consent(stack, p, ["education", "attendance"])
    consent_b = record_consent(stack, p, ["aln", "health_wellbeing"])
    transition_id = send(stack, p)
    before = inbox_item(stack, transition_id)
    assert set(before["sections"]) == {"identifiers", "attendance", "aln", "wellbeing"}
    wait_until(lambda: link_copy(stack, transition_id), timeout=15)

    withdraw(stack, consent_b)

    item = wait_until(lambda: once(inbox_item(stack, transition_id), lambda i: "aln" in withheld(i)), timeout=15)
    assert set(item["sections"]) == {"identifiers", "attendance"}
    assert withheld(item) == {"aln": "withdrawn", "wellbeing": "withdrawn"}
    # the CTF made from then on carries no ALN
    response = requests.get(f"{stack['base']}/api/v1/transitions/{transition_id}/ctf",
                            headers=bearer("sec1", stack["secondary"], ["transition_lead"]), timeout=30)
    assert response.status_code == 200, response.text
    [exported] = ctf.import_(response.content)["pupils"]
    assert "aln" not in exported and exported["identifiers"]["upn"] == p["child"]["upn"]
    assert p["sections"]["aln"]["areas_of_need"][0] not in response.text
    # the sending school sees it too
    lead = {"sub": "lead1", "org": stack["primary"], "roles": ["transition_lead"]}
    with ServiceRpcProxy(stack["names"]["transitions"], {"AMQP_URI": AMQP_URI}) as transitions:
        mine = transitions.get(transition_id, signed(lead))
    assert withheld(mine) == {"aln": "withdrawn", "wellbeing": "withdrawn"}
    # the secondary's agency link: its copy names the consents per section, so it withholds the same two
    copy = wait_until(lambda: once(link_copy(stack, transition_id), lambda c: c["withheld"]), timeout=15)
    assert not copy["restricted"] and set(copy["content"]["sections"]) == {"identifiers", "attendance"}
    assert copy["withheld"] == [{"part": "aln", "reason": "restricted"}, {"part": "wellbeing", "reason": "restricted"}]


def test_erase_deletes_the_details_and_leaves_a_tombstone(stack):
    p = pupil(2)
    consent_id = record_consent(stack, p, ["education", "attendance", "aln", "health_wellbeing"])
    transition_id = send(stack, p)
    wait_until(lambda: link_copy(stack, transition_id), timeout=15)

    withdraw(stack, consent_id, erase=True)

    item = wait_until(lambda: once(inbox_item(stack, transition_id), withheld), timeout=15)
    assert item["sections"] == {} and item["child_ref"] and item["sent_at"]
    assert withheld(item) == {s: "erased" for s in ("identifiers", "attendance", "aln", "wellbeing")}
    engine = create_engine(stack["transitions_db"])
    try:
        with engine.connect() as db:
            stored = db.execute(text("SELECT sections::text FROM transitions WHERE id = :id"),
                                {"id": transition_id}).scalar_one()
    finally:
        engine.dispose()
    assert p["child"]["upn"] not in stored and "Gwen2" not in stored and stored == "{}"
    copy = wait_until(lambda: once(link_copy(stack, transition_id), lambda c: c["restricted"]), timeout=15)
    assert copy["content"] is None and copy["restriction"] == "erased"
    ctf_after = requests.get(f"{stack['base']}/api/v1/transitions/{transition_id}/ctf",
                             headers=bearer("sec1", stack["secondary"], ["transition_lead"]), timeout=30)
    assert ctf_after.status_code == 409   # no identifiers left: no CTF for that record


def test_expiry_restricts_like_withdrawal(stack):
    p = pupil(3)
    record_consent(stack, p, ["education", "attendance"])
    record_consent(stack, p, ["aln", "health_wellbeing"], expires_on=date.today() + timedelta(days=1))
    transition_id = send(stack, p)
    wait_until(lambda: link_copy(stack, transition_id), timeout=15)

    stack["consent_clock"].offset += timedelta(days=3)   # the consent service's expiry timer sees it lapse

    item = wait_until(lambda: once(inbox_item(stack, transition_id), withheld), timeout=15)
    assert withheld(item) == {"aln": "expired", "wellbeing": "expired"}
    assert set(item["sections"]) == {"identifiers", "attendance"}
    copy = wait_until(lambda: once(link_copy(stack, transition_id), lambda c: c["withheld"]), timeout=15)
    assert set(copy["content"]["sections"]) == {"identifiers", "attendance"}
    assert [w["part"] for w in copy["withheld"]] == ["aln", "wellbeing"]


def test_a_send_retried_after_its_transaction_failed_leaves_one_ledger_entry(stack):
    """The consent service recorded the disclosure, then the transitions service's own
    transaction failed (here: the record's id is already taken). The client retries with the
    same Idempotency-Key: the record is sent, and the ledger holds one entry, not two."""
    p = pupil(4)
    record_consent(stack, p, ["education", "attendance", "aln", "health_wellbeing"])
    key = uuid.uuid4().hex
    blocked = record_id(f"POST /transitions:{stack['primary']}", (key, {}), 0)
    engine = create_engine(stack["transitions_db"])
    request = {"json": {"to_school": stack["secondary"], "pupils": [p], "send": True},
               "headers": {**bearer("lead1", stack["primary"], ["transition_lead"]), "Idempotency-Key": key},
               "timeout": 60}
    try:
        with engine.begin() as db:
            db.execute(text("INSERT INTO transitions (id, child_ref, from_school, to_school, prepared_by, "
                            "prepared_at, status, sections, included, withheld, disclosure_ids) VALUES "
                            "(:id, 'x', 'x', 'x', 'x', now(), 'prepared', '{}', '[]', '[]', '[]')"), {"id": blocked})
        failed = requests.post(f"{stack['base']}/api/v1/transitions", **request)
        assert failed.status_code >= 500
        with engine.begin() as db:
            db.execute(text("DELETE FROM transitions WHERE id = :id"), {"id": blocked})

        retried = requests.post(f"{stack['base']}/api/v1/transitions", **request)
        again = requests.post(f"{stack['base']}/api/v1/transitions", **request)
    finally:
        engine.dispose()

    assert retried.status_code == 201, retried.text
    assert retried.json()["ids"] == [blocked] and again.json() == retried.json()
    dsl = {"sub": "dsl1", "org": stack["primary"], "roles": ["dsl"]}
    with ServiceRpcProxy(stack["names"]["consent"], {"AMQP_URI": AMQP_URI}) as consent:
        ref = child_ref(p["child"]["upn"], Settings.from_env("x", {}).child_ref_secret)
        entries = consent.disclosures(ref, signed(dsl))
    [entry] = [e for e in entries if e["kind"] == "disclosure"]
    assert entry["subject_id"] == blocked


def test_a_consent_withdrawn_before_can_then_be_erased(stack):
    p = pupil(5)
    record_consent(stack, p, ["education", "attendance"])
    consent_b = record_consent(stack, p, ["aln", "health_wellbeing"])
    transition_id = send(stack, p)
    wait_until(lambda: link_copy(stack, transition_id), timeout=15)
    withdraw(stack, consent_b)
    wait_until(lambda: once(inbox_item(stack, transition_id), withheld), timeout=15)

    withdraw(stack, consent_b, erase=True)

    item = wait_until(lambda: once(inbox_item(stack, transition_id), lambda i: "erased" in withheld(i).values()),
                      timeout=15)
    assert withheld(item) == {"aln": "erased", "wellbeing": "erased"}
    assert set(item["sections"]) == {"identifiers", "attendance"}
    engine = create_engine(stack["transitions_db"])
    try:
        with engine.connect() as db:
            stored = db.execute(text("SELECT sections FROM transitions WHERE id = :id"),
                                {"id": transition_id}).scalar_one()
    finally:
        engine.dispose()
    assert set(stored) == {"identifiers", "attendance"}
    copy = wait_until(lambda: once(link_copy(stack, transition_id),
                                   lambda c: {w["reason"] for w in c["withheld"]} == {"erased"}), timeout=15)
    assert set(copy["content"]["sections"]) == {"identifiers", "attendance"}
    link_engine = create_engine(stack["link_db"])
    try:
        with link_engine.connect() as db:
            held = db.execute(text("SELECT content::text FROM disclosures WHERE subject_id = :id"),
                              {"id": transition_id}).scalar_one()
    finally:
        link_engine.dispose()
    assert p["sections"]["wellbeing"]["notes"] not in held and p["child"]["upn"] in held   # erased, not hidden
