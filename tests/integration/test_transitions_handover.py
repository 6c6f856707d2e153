"""Year 6 hand-over, end to end: gateway → transitions → consent → the secondary's agency_link.

Real RabbitMQ, PostgreSQL and real containers of every service involved (consent,
transitions, agency_link of the secondary, gateway), each under a unique name, with
unique school ids so the module can run beside other tests.
"""
from __future__ import annotations

import dataclasses
import hashlib
import random
import re
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
import requests
from nameko.containers import ServiceContainer
from nameko.standalone.rpc import ServiceRpcProxy
from sqlalchemy import create_engine, text

from agency_link.service import AgencyLinkService
from consent.service import ConsentService
from gateway.service import GatewayService
from pont_shared.config import Settings, safe_name
from pont_shared.contract.envelope import EVENTS_EXCHANGE
from pont_shared.identity import child_ref, make_upn
from pont_shared.messaging.rpc import RpcProxy
from pont_shared.messaging.wire import WireObserver
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
from transitions.service import TransitionsService

pytestmark = pytest.mark.integration

COHORT = 60
CONSENTED_FULLY = 40          # pupils 0..39 consent to every category but family_context
CP_PUPIL = 5                  # the pupil whose child-protection section moves DSL to DSL


def _school() -> str:
    return f"school:6{random.randint(10, 99)}{random.randint(0, 9999):04d}"


def _settings(service: str, database_url: str) -> Settings:
    env = {"AMQP_URI": AMQP_URI, "PONT_RETRY_DELAYS": "0.05,0.1,0.2", "PONT_OUTBOX_POLL_SECONDS": "0.1",
           "PONT_LOG_LEVEL": "WARNING"}
    return dataclasses.replace(Settings.from_env(service, env, http_port=0), database_url=database_url)


def _start(cls, name: str, settings: Settings, extra: dict | None = None, **attrs) -> ServiceContainer:
    service_cls = type(cls.__name__, (cls,), {"name": name, **attrs})
    config = {**settings.nameko_config(), "WEB_SERVER_ADDRESS": web_address(), **(extra or {})}
    container = ServiceContainer(service_cls, config)
    container.start()
    return container


@pytest.fixture(scope="module")
def stack():
    run = uuid.uuid4().hex[:8]
    names = {"consent": f"consent_{run}", "transitions": f"transitions_{run}", "gateway": f"gateway_{run}",
             "referrals": f"referrals_{run}"}
    primary, secondary, other = _school(), _school(), _school()
    clock = MovableClock()
    containers = []
    with fresh_database("pont_tr_consent") as consent_db, fresh_database("pont_tr_transitions") as transitions_db, \
            fresh_database("pont_tr_link") as link_db, fresh_database("pont_tr_other_link") as other_link_db, \
            fresh_database("pont_tr_referrals") as referrals_db:
        try:
            containers.append(_start(ConsentService, names["consent"], _settings("consent", consent_db)))
            containers.append(_start(ReferralsService, names["referrals"], _settings("referrals", referrals_db),
                                     consent=RpcProxy(names["consent"])))
            containers.append(_start(
                TransitionsService, names["transitions"], _settings("transitions", transitions_db),
                {"PONT_CLOCK": clock, "TRANSITIONS_ACK_PERIOD_SECONDS": 7 * 86400,
                 "TRANSITIONS_OVERDUE_CHECK_SECONDS": 0.1},
                consent=RpcProxy(names["consent"]), referrals=RpcProxy(names["referrals"])))
            link_name = f"agency_link_{safe_name(secondary)}"
            containers.append(_start(AgencyLinkService, link_name, _settings(link_name, link_db), {"org": secondary}))
            other_link = f"agency_link_{safe_name(other)}"
            containers.append(_start(AgencyLinkService, other_link, _settings(other_link, other_link_db),
                                     {"org": other}))
            gateway = _start(GatewayService, names["gateway"], _settings("gateway", "sqlite://"),
                             transitions=RpcProxy(names["transitions"]))
            containers.append(gateway)
            yield {"names": names, "primary": primary, "secondary": secondary, "other": other, "clock": clock,
                   "base": http_url(gateway), "link": link_name, "config": {"AMQP_URI": AMQP_URI},
                   "link_db": link_db, "other_link_db": other_link_db}
        finally:
            for container in reversed(containers):
                container.stop()
                delete_queues(container)


def rpc(stack, service: str):
    return ServiceRpcProxy(service, stack["config"])


def pupil(n: int) -> dict:
    sections = {
        "attendance": {"year": 2025, "sessions_possible": 380, "sessions_authorised": n % 13,
                       "sessions_unauthorised": n % 5},
        "aln": {"decision_outcome": "has_aln" if n % 3 == 0 else "no_aln",
                **({"idp": {"maintained_by": "school"}, "areas_of_need": ["SLCN"], "review_date": "2026-03-01"}
                   if n % 3 == 0 else {"areas_of_need": []})},
        "wellbeing": {"notes": f"wellbeing note {n}"},
    }
    if n % 10 == 0:
        sections["agency_involvement"] = [{"agency": "youth_work:cardiff", "service": "youth_work"}]
    if n == CP_PUPIL:
        sections["child_protection"] = {"status": "open", "summary": "on the child protection register"}
    return {"child": {"upn": make_upn(n, prefix=str(random.randint(700, 999))), "given_name": f"Given{n}",
                      "family_name": f"Family{n}", "date_of_birth": "2014-05-03"},
            "basic": {"gender": "F" if n % 2 else "M"}, "sections": sections}


@pytest.fixture(scope="module")
def cohort(stack):
    """Agreement (every category but family_context) and consents: 0..39 wide, 40..59 narrow."""
    pupils = [pupil(n) for n in range(COHORT)]
    staff = {"sub": "staff1", "org": stack["primary"], "roles": ["school_staff"]}
    with rpc(stack, stack["names"]["consent"]) as consent:
        agreement_in_force(consent, {
            "parties": [stack["primary"], stack["secondary"]], "purposes": ["transition"],
            "categories": ["education", "attendance", "aln", "health_wellbeing", "safeguarding"],
            "valid_from": str(date.today() - timedelta(days=1)), "valid_to": str(date.today() + timedelta(days=400)),
        })
        for n, p in enumerate(pupils):
            wide = n < CONSENTED_FULLY
            consent.record_consent({
                "child": {"upn": p["child"]["upn"], "date_of_birth": p["child"]["date_of_birth"]},
                "given_by": {"name": "Parent", "relationship": "parent"}, "recipients": [stack["secondary"]],
                "purposes": ["transition"], "evidence": "written",
                "categories": ["education", "attendance", "aln", "health_wellbeing"] if wide
                else ["education", "attendance"],
            }, signed(staff))
    return pupils


def headers(org: str, *roles: str, sub: str = "user1") -> dict:
    return bearer(sub, org, roles)


def ref(p: dict) -> str:
    return child_ref(p["child"]["upn"], Settings.from_env("x", {}).child_ref_secret)


@pytest.fixture(scope="module")
def sent(stack, cohort):
    response = requests.post(f"{stack['base']}/api/v1/transitions",
                             json={"to_school": stack["secondary"], "pupils": cohort, "send": True},
                             headers=headers(stack["primary"], "transition_lead"), timeout=60)
    assert response.status_code == 201, response.text
    return response.json()


def expected_withheld(n: int, p: dict) -> set[str]:
    withheld = set() if n < CONSENTED_FULLY else {"aln", "wellbeing"}
    if "agency_involvement" in p["sections"]:
        withheld.add("agency_involvement")            # no agreement covers family_context
    if "child_protection" in p["sections"]:
        withheld.add("child_protection")              # the sender here is not a DSL
    return withheld


class TestCohortHandOver:
    def test_all_sixty_reach_the_secondary_with_sections_withheld_exactly_where_no_basis(self, stack, cohort, sent):
        inbox = requests.get(f"{stack['base']}/api/v1/transitions/inbox",
                             headers=headers(stack["secondary"], "transition_lead"), timeout=30)

        assert inbox.status_code == 200, inbox.text
        by_ref = {item["child_ref"]: item for item in inbox.json()}
        assert len(sent["ids"]) == COHORT and len(by_ref) == COHORT
        for n, p in enumerate(cohort):
            item = by_ref[ref(p)]
            withheld = {w["section"] for w in item["withheld"]}
            assert withheld == expected_withheld(n, p), n
            assert set(item["sections"]) == {"identifiers", "attendance", "aln", "wellbeing"} - withheld
            assert item["sections"]["identifiers"]["upn"] == p["child"]["upn"]

    def test_the_secondarys_own_agency_link_holds_all_sixty(self, stack, cohort, sent):
        caller = {"sub": "sec1", "org": stack["secondary"], "roles": ["transition_lead"]}

        def held():
            with rpc(stack, stack["link"]) as link:
                items = link.inbox("transition", signed(caller))
            return items if len({i["child_ref"] for i in items}) == COHORT else None

        items = wait_until(held, timeout=30)
        refs = {ref(p): n for n, p in enumerate(cohort)}
        for item in items:
            n = refs[item["child_ref"]]
            assert item["basis"] == "consent"
            content = item["content"]
            assert set(content["sections"]) == {"identifiers", "attendance", "aln", "wellbeing"} - \
                expected_withheld(n, cohort[n])

    def test_the_ledger_records_each_disclosure_with_its_basis(self, stack, cohort, sent):
        dsl = {"sub": "dsl1", "org": stack["primary"], "roles": ["dsl"]}
        with rpc(stack, stack["names"]["consent"]) as consent:
            entries = consent.disclosures(ref(cohort[45]), signed(dsl))

        [entry] = [e for e in entries if e["kind"] == "disclosure"]
        assert entry["basis"] == "consent" and sorted(entry["categories"]) == ["attendance", "education"]
        assert entry["subject_kind"] == "transition"


class TestChildProtection:
    def test_moves_only_dsl_to_dsl_on_legal_obligation(self, stack, cohort):
        p = {**cohort[CP_PUPIL], "child": {**cohort[CP_PUPIL]["child"], "upn": make_upn(random.randint(1, 10**8))}}
        with rpc(stack, stack["names"]["consent"]) as consent:
            consent.record_consent({
                "child": {"upn": p["child"]["upn"]}, "given_by": {"name": "Parent", "relationship": "parent"},
                "recipients": [stack["secondary"]], "purposes": ["transition"], "evidence": "written",
                "categories": ["education"]}, signed({"sub": "s", "org": stack["primary"], "roles": ["school_staff"]}))

        response = requests.post(f"{stack['base']}/api/v1/transitions",
                                 json={"to_school": stack["secondary"], "pupils": [p], "send": True},
                                 headers=headers(stack["primary"], "transition_lead", "dsl"), timeout=30)

        assert response.status_code == 201, response.text
        [record] = response.json()["records"]
        assert "child_protection" in record["included"]
        as_dsl = requests.get(f"{stack['base']}/api/v1/transitions/inbox",
                              headers=headers(stack["secondary"], "dsl"), timeout=30).json()
        as_lead = requests.get(f"{stack['base']}/api/v1/transitions/inbox",
                               headers=headers(stack["secondary"], "transition_lead"), timeout=30).json()
        [for_dsl] = [i for i in as_dsl if i["id"] == record["id"]]
        [for_lead] = [i for i in as_lead if i["id"] == record["id"]]
        assert for_dsl["sections"]["child_protection"]["status"] == "open"
        assert "child_protection" not in for_lead["sections"]
        assert for_lead["restricted"][0]["section"] == "child_protection"
        with rpc(stack, stack["names"]["consent"]) as consent:
            entries = consent.disclosures(record["child_ref"], signed({"sub": "a", "org": stack["primary"],
                                                                "roles": ["admin"]}))
        legal = [e for e in entries if e["basis"] == "legal_obligation"]
        assert len(legal) == 1 and legal[0]["categories"] == ["safeguarding"]
        assert legal[0]["to_org"] == stack["secondary"] and legal[0]["subject_id"] == record["id"]


class TestCtf:
    def test_one_record_exports_a_valid_ctf_named_as_ctf_files_are(self, stack, cohort, sent):
        transition_id = sent["ids"][3]

        response = requests.get(f"{stack['base']}/api/v1/transitions/{transition_id}/ctf",
                                headers=headers(stack["secondary"], "transition_lead"), timeout=30)

        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"].startswith("application/xml")
        la_from, la_to = stack["primary"].split(":")[1], stack["secondary"].split(":")[1]
        assert re.search(rf'filename="{la_from}_CTF_{la_to}_\d{{3}}\.xml"', response.headers["Content-Disposition"])
        ctf.validate(response.content)

    def test_the_cohort_file_imports_back_to_the_same_pupil_data(self, stack, cohort, sent):
        response = requests.get(f"{stack['base']}/api/v1/transitions/ctf",
                                params={"from_school": stack["primary"], "to_school": stack["secondary"]},
                                headers=headers(stack["primary"], "transition_lead"), timeout=30)
        assert response.status_code == 200, response.text

        imported = requests.post(f"{stack['base']}/api/v1/transitions/ctf-import", json={"xml": response.text},
                                 headers=headers(stack["secondary"], "transition_lead"), timeout=30)

        assert imported.status_code == 200, imported.text
        by_ref = {p["child_ref"]: p for p in imported.json()["pupils"]}
        for n, p in enumerate(cohort):
            got = by_ref[ref(p)]
            assert got["identifiers"] == {**p["child"], **p["basic"]}
            assert got["attendance"] == p["sections"]["attendance"]
            if n < CONSENTED_FULLY:
                assert got["aln"] == p["sections"]["aln"]
            else:
                assert "aln" not in got                 # withheld, so never in the CTF
        assert "wellbeing note" not in response.text

    def test_a_cohort_file_leaves_out_pupils_whose_identifiers_were_withheld_and_counts_them(self, stack):
        primary = _school()
        shared, unshared = pupil(200), pupil(201)
        with rpc(stack, stack["names"]["consent"]) as consent:
            agreement_in_force(consent, {
                "parties": [primary, stack["secondary"]], "purposes": ["transition"],
                "categories": ["education", "attendance"], "valid_from": str(date.today() - timedelta(days=1)),
                "valid_to": str(date.today() + timedelta(days=400))})
            consent.record_consent({
                "child": {"upn": shared["child"]["upn"]}, "given_by": {"name": "Parent", "relationship": "parent"},
                "recipients": [stack["secondary"]], "purposes": ["transition"], "evidence": "written",
                "categories": ["education", "attendance"]},
                signed({"sub": "s", "org": primary, "roles": ["school_staff"]}))
        lead = headers(primary, "transition_lead")
        created = requests.post(f"{stack['base']}/api/v1/transitions",
                                json={"to_school": stack["secondary"], "pupils": [shared, unshared], "send": True},
                                headers=lead, timeout=30).json()
        unshared_id = created["ids"][1]

        cohort_file = requests.get(f"{stack['base']}/api/v1/transitions/ctf",
                                   params={"from_school": primary, "to_school": stack["secondary"]}, headers=lead,
                                   timeout=30)
        one = requests.get(f"{stack['base']}/api/v1/transitions/{unshared_id}/ctf", headers=lead, timeout=30)

        assert cohort_file.status_code == 200, cohort_file.text
        assert (cohort_file.headers["Pont-CTF-Pupils"], cohort_file.headers["Pont-CTF-Omitted"]) == ("1", "1")
        assert shared["child"]["upn"] in cohort_file.text and unshared["child"]["upn"] not in cohort_file.text
        ctf.validate(cohort_file.content)
        assert one.status_code == 409

    def test_a_broken_ctf_is_a_422_naming_the_field(self, stack):
        response = requests.post(f"{stack['base']}/api/v1/transitions/ctf-import", json={"xml": "<CTfile/>"},
                                 headers=headers(stack["secondary"], "transition_lead"), timeout=30)

        assert response.status_code == 422 and response.json()["errors"][0]["field"] == "xml"


class TestWhoMay:
    def test_another_school_gets_404(self, stack, sent):
        transition_id = sent["ids"][0]
        other = headers(stack["other"], "transition_lead", "dsl")

        ctf_response = requests.get(f"{stack['base']}/api/v1/transitions/{transition_id}/ctf", headers=other,
                                    timeout=30)
        ack = requests.post(f"{stack['base']}/api/v1/transitions/{transition_id}/acknowledge", headers=other,
                            timeout=30)
        send = requests.post(f"{stack['base']}/api/v1/transitions/{transition_id}/send", headers=other, timeout=30)
        inbox = requests.get(f"{stack['base']}/api/v1/transitions/inbox", headers=other, timeout=30)

        assert (ctf_response.status_code, ack.status_code, send.status_code) == (404, 404, 404)
        assert inbox.status_code == 200 and inbox.json() == []

    def test_a_non_transition_role_cannot_create_records(self, stack, cohort):
        for roles in (("school_staff",), ("school_nurse",), ("dsl",)):
            response = requests.post(f"{stack['base']}/api/v1/transitions",
                                     json={"to_school": stack["secondary"], "pupils": cohort[:1]},
                                     headers=headers(stack["primary"], *roles), timeout=30)
            assert response.status_code == 403, roles

    def test_invalid_input_is_a_422_naming_the_field(self, stack, cohort):
        bad = {**cohort[0], "sections": {"aln": {"decision_outcome": "maybe"}}}

        response = requests.post(f"{stack['base']}/api/v1/transitions",
                                 json={"to_school": stack["secondary"], "pupils": [bad]},
                                 headers=headers(stack["primary"], "transition_lead"), timeout=30)

        assert response.status_code == 422
        assert response.json()["errors"][0]["field"].startswith("pupils.0.sections.aln.decision_outcome")


class TestReceiptAndOverdue:
    def test_prepare_then_send_then_acknowledge(self, stack, cohort):
        observer = WireObserver(AMQP_URI, bindings=[(EVENTS_EXCHANGE, "pont.transition.#")])
        try:
            lead = headers(stack["primary"], "transition_lead")
            created = requests.post(f"{stack['base']}/api/v1/transitions",
                                    json={"to_school": stack["secondary"], "pupils": cohort[:1]},
                                    headers=lead, timeout=30).json()
            [transition_id] = created["ids"]
            assert created["records"][0]["status"] == "prepared"

            sent = requests.post(f"{stack['base']}/api/v1/transitions/{transition_id}/send", headers=lead,
                                 timeout=30)
            again = requests.post(f"{stack['base']}/api/v1/transitions/{transition_id}/send", headers=lead,
                                  timeout=30)
            ack = requests.post(f"{stack['base']}/api/v1/transitions/{transition_id}/acknowledge",
                                headers=headers(stack["secondary"], "transition_lead"), timeout=30)

            assert sent.status_code == 200 and sent.json()["status"] == "sent"
            assert again.status_code == 409
            assert ack.status_code == 200 and ack.json()["status"] == "acknowledged"
            observer.wait_for(lambda seen: {e.type for e in seen if e.data["transition_id"] == transition_id} >= {
                "pont.transition.prepared.v1", "pont.transition.sent.v1", "pont.transition.acknowledged.v1"},
                timeout=10)
        finally:
            observer.close()

    def test_an_unacknowledged_record_goes_overdue_when_its_period_passes(self, stack, sent):
        observer = WireObserver(AMQP_URI, bindings=[(EVENTS_EXCHANGE, "pont.transition.overdue.v1")])
        try:
            pending = sent["ids"][10]
            observer.drain()
            assert not [e for e in observer.seen if e.data["transition_id"] == pending]

            stack["clock"].offset = timedelta(days=8)

            observer.wait_for(lambda seen: any(e.data["transition_id"] == pending for e in seen), timeout=10)
            event = next(e for e in observer.seen if e.data["transition_id"] == pending)
            assert set(event.data) == {"transition_id", "child_ref", "from_school", "to_school"}
            overdue = requests.get(f"{stack['base']}/api/v1/transitions", params={"status": "overdue"},
                                   headers=headers(stack["primary"], "transition_lead"), timeout=30).json()
            assert any(item["id"] == pending and item["overdue_at"] for item in overdue)
        finally:
            stack["clock"].offset = timedelta()
            observer.close()


class TestSendersView:
    """GET /api/v1/transitions: the sending school follows its own records to acknowledgement."""

    def mine(self, stack, org: str, **params) -> requests.Response:
        return requests.get(f"{stack['base']}/api/v1/transitions", params=params,
                            headers=headers(org, "transition_lead"), timeout=30)

    def test_shows_a_record_prepared_with_what_is_withheld_then_sent_then_acknowledged(self, stack, cohort):
        lead = headers(stack["primary"], "transition_lead")
        narrow = cohort[CONSENTED_FULLY]  # consented to education and attendance only
        created = requests.post(f"{stack['base']}/api/v1/transitions",
                                json={"to_school": stack["secondary"], "pupils": [narrow]}, headers=lead,
                                timeout=30).json()
        [transition_id] = created["ids"]

        prepared = {i["id"]: i for i in self.mine(stack, stack["primary"], to_school=stack["secondary"]).json()}
        requests.post(f"{stack['base']}/api/v1/transitions/{transition_id}/send", headers=lead, timeout=30)
        requests.post(f"{stack['base']}/api/v1/transitions/{transition_id}/acknowledge",
                      headers=headers(stack["secondary"], "transition_lead"), timeout=30)
        acknowledged = self.mine(stack, stack["primary"], status="acknowledged").json()
        still_prepared = self.mine(stack, stack["primary"], status="prepared").json()

        record = prepared[transition_id]
        assert record["status"] == "prepared" and record["sent_at"] is None and record["acknowledged_at"] is None
        assert record["pupil"] == {key: narrow["child"][key]
                                   for key in ("upn", "given_name", "family_name", "date_of_birth")}
        assert {w["section"] for w in record["withheld"]} == expected_withheld(CONSENTED_FULLY, narrow)
        assert all(w["reason"] for w in record["withheld"])
        done = next(item for item in acknowledged if item["id"] == transition_id)
        assert done["status"] == "acknowledged" and done["sent_at"] and done["due_at"] and done["acknowledged_at"]
        assert transition_id not in {item["id"] for item in still_prepared}

    def test_another_school_sees_none_of_them_and_a_dsl_alone_may_not_ask(self, stack, sent):
        other = self.mine(stack, stack["other"])
        receiver = requests.get(f"{stack['base']}/api/v1/transitions",
                                headers=headers(stack["secondary"], "dsl"), timeout=30)
        bad = self.mine(stack, stack["primary"], status="lost")

        assert other.status_code == 200 and not set(sent["ids"]) & {item["id"] for item in other.json()}
        assert receiver.status_code == 403
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "query.status"


class TestCohortFromTheSchoolsMisCtf:
    """POST /api/v1/transitions/from-ctf: the sending school uploads the CTF its MIS exported."""

    def ctf_of(self, pupils: list[dict], source: str, destination: str) -> str:
        carried = [{"identifiers": {**p["child"], **p["basic"]},
                    **{k: v for k, v in p["sections"].items() if k in ("attendance", "aln")}} for p in pupils]
        return ctf.export(source, destination, carried, datetime.now(UTC)).decode("utf-8")

    def test_prepares_a_record_per_pupil_of_the_file_decided_as_their_sections_would_be(self, stack, cohort):
        lead = headers(stack["primary"], "transition_lead")
        pupils = [cohort[1], cohort[CONSENTED_FULLY + 1]]  # one consented to every category, one narrowly

        created = requests.post(f"{stack['base']}/api/v1/transitions/from-ctf",
                                json={"xml": self.ctf_of(pupils, stack["primary"], stack["secondary"])},
                                headers=lead, timeout=30)

        assert created.status_code == 201, created.text
        wide, narrow = created.json()["records"]
        assert wide["to_school"] == narrow["to_school"] == stack["secondary"]
        assert wide["status"] == narrow["status"] == "prepared"
        assert (wide["child_ref"], narrow["child_ref"]) == (ref(pupils[0]), ref(pupils[1]))
        assert set(wide["included"]) == {"identifiers", "attendance", "aln"} and wide["withheld"] == []
        assert set(narrow["included"]) == {"identifiers", "attendance"}
        assert [w["section"] for w in narrow["withheld"]] == ["aln"]

    def test_refuses_a_file_from_another_school_or_to_another_than_named_naming_the_field(self, stack, cohort):
        lead = headers(stack["primary"], "transition_lead")
        theirs = self.ctf_of(cohort[:1], stack["other"], stack["secondary"])
        ours = self.ctf_of(cohort[:1], stack["primary"], stack["secondary"])
        bad_upn = cohort[0]["child"]["upn"]
        wrong = self.ctf_of([{**cohort[0], "child": {**cohort[0]["child"], "upn": bad_upn[:-1] + str(
            (int(bad_upn[-1]) + 1) % 10)}}], stack["primary"], stack["secondary"])

        answers = [requests.post(f"{stack['base']}/api/v1/transitions/from-ctf", json=body, headers=lead, timeout=30)
                   for body in ({"xml": theirs}, {"xml": ours, "to_school": stack["other"]}, {"xml": wrong},
                                {"xml": "<CTfile/>"})]

        assert [a.status_code for a in answers] == [422, 422, 422, 422]
        assert [a.json()["errors"][0]["field"] for a in answers] == [
            "xml", "to_school", "xml.pupils.0.child.upn", "xml"]


def imported_rows(database_url: str, source_file: str | None = None) -> list[dict]:
    """The imported transfer records in one agency_link's own database, read directly."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            query = "SELECT child_ref, source_file, from_school, content FROM imported_transfers"
            if source_file is not None:
                return [dict(r) for r in conn.execute(text(query + " WHERE source_file = :f"),
                                                      {"f": source_file}).mappings()]
            return [dict(r) for r in conn.execute(text(query)).mappings()]
    finally:
        engine.dispose()


class TestCtfImportIntoTheReceivingSchoolsStore:
    @pytest.fixture(scope="class")
    def exported(self, stack, sent):
        response = requests.get(f"{stack['base']}/api/v1/transitions/ctf",
                                params={"from_school": stack["primary"], "to_school": stack["secondary"]},
                                headers=headers(stack["primary"], "transition_lead"), timeout=30)
        assert response.status_code == 200, response.text
        return response.text

    def test_the_receiving_schools_store_holds_the_same_pupil_data_and_reimport_adds_nothing(
            self, stack, cohort, exported):
        source_file = "sha256:" + hashlib.sha256(exported.encode("utf-8")).hexdigest()
        lead = headers(stack["secondary"], "transition_lead")

        first = requests.post(f"{stack['base']}/api/v1/transitions/ctf-import", json={"xml": exported},
                              headers=lead, timeout=30)
        again = requests.post(f"{stack['base']}/api/v1/transitions/ctf-import", json={"xml": exported},
                              headers=headers(stack["secondary"], "dsl"), timeout=30)

        assert first.status_code == 200, first.text
        # the cohort, plus the other records between the two schools; one record per pupil however often listed
        in_file = len({p["child_ref"] for p in first.json()["pupils"]})
        assert in_file >= COHORT
        assert (first.json()["imported"], first.json()["already_held"]) == (in_file, 0)
        assert again.status_code == 200, again.text
        assert (again.json()["imported"], again.json()["already_held"]) == (0, in_file)
        rows = imported_rows(stack["link_db"], source_file)
        assert len(rows) == in_file
        by_ref = {row["child_ref"]: row for row in rows}
        for n, p in enumerate(cohort):
            row = by_ref[ref(p)]
            assert row["from_school"] == stack["primary"]
            content = row["content"]
            assert content["identifiers"] == {**p["child"], **p["basic"]}
            assert content["attendance"] == p["sections"]["attendance"]
            if n < CONSENTED_FULLY:
                assert content["aln"] == p["sections"]["aln"]
            else:
                assert "aln" not in content                  # withheld, so never in the CTF
            assert set(content) <= {"identifiers", "attendance", "aln"}
        listed = requests.get(f"{stack['base']}/api/v1/transitions/imported", headers=lead, timeout=30)
        assert listed.status_code == 200, listed.text
        mine = [item for item in listed.json() if item["source_file"] == source_file]
        assert {item["child_ref"] for item in mine} == set(by_ref)

    def test_another_school_holds_nothing_and_cannot_import_a_file_addressed_elsewhere(self, stack, exported):
        other = headers(stack["other"], "transition_lead", "dsl")

        response = requests.post(f"{stack['base']}/api/v1/transitions/ctf-import", json={"xml": exported},
                                 headers=other, timeout=30)
        listed = requests.get(f"{stack['base']}/api/v1/transitions/imported", headers=other, timeout=30)

        assert response.status_code == 422 and response.json()["errors"][0]["field"] == "xml"
        assert listed.status_code == 200 and listed.json() == []
        assert imported_rows(stack["other_link_db"]) == []

    def test_only_a_transition_lead_or_dsl_of_a_school_imports(self, stack, exported):
        for org, roles in ((stack["secondary"], ("school_staff",)), ("health:cardiff-vale", ("dsl",))):
            response = requests.post(f"{stack['base']}/api/v1/transitions/ctf-import", json={"xml": exported},
                                     headers=headers(org, *roles), timeout=30)
            assert response.status_code == 403, (org, roles, response.text)

    def test_a_malformed_ctf_is_a_422_naming_xml_and_stores_nothing(self, stack):
        before = len(imported_rows(stack["link_db"]))

        response = requests.post(f"{stack['base']}/api/v1/transitions/ctf-import",
                                 json={"xml": "<CTfile><Header>"},
                                 headers=headers(stack["secondary"], "transition_lead"), timeout=30)

        assert response.status_code == 422 and response.json()["errors"][0]["field"] == "xml"
        assert len(imported_rows(stack["link_db"])) == before


class TestOpenAgencyInvolvementFromReferrals:
    """A second primary whose agreement with the secondary covers family_context."""

    def test_an_open_referral_travels_where_consent_allows_family_context_and_is_withheld_where_not(self, stack):
        primary = _school()
        health = f"health:h{uuid.uuid4().hex[:6]}"
        staff = {"sub": "staff2", "org": primary, "roles": ["school_staff"]}
        allowed, refused, own = (pupil(100 + n) for n in range(3))
        for p in (allowed, refused, own):
            p["sections"] = {"attendance": p["sections"]["attendance"]}
        own["sections"]["agency_involvement"] = [{"agency": "youth_work:cardiff", "service": "youth_work"}]
        with rpc(stack, stack["names"]["consent"]) as consent:
            agreement_in_force(consent, {
                "parties": [primary, stack["secondary"]], "purposes": ["transition"],
                "categories": ["education", "attendance", "family_context"],
                "valid_from": str(date.today() - timedelta(days=1)),
                "valid_to": str(date.today() + timedelta(days=400)),
            })
            for p, categories in ((allowed, ["education", "attendance", "family_context"]),
                                  (refused, ["education", "attendance"]),
                                  (own, ["education", "attendance", "family_context"])):
                consent.record_consent({
                    "child": {"upn": p["child"]["upn"], "date_of_birth": p["child"]["date_of_birth"]},
                    "given_by": {"name": "Parent", "relationship": "parent"}, "recipients": [stack["secondary"]],
                    "purposes": ["transition"], "evidence": "written", "categories": categories}, signed(staff))
        with rpc(stack, stack["names"]["referrals"]) as referrals:
            for p in (allowed, refused, own):
                raised = referrals.raise_referral({
                    "child": p["child"], "to_org": health, "service": "school_nursing", "reason": "low mood",
                    "details": "Withdrawn in class.", "urgency": "routine", "share": ["contact"],
                    "caller": signed(staff)})
                assert raised["status"] == "awaiting_consent"

        response = requests.post(f"{stack['base']}/api/v1/transitions",
                                 json={"to_school": stack["secondary"], "pupils": [allowed, refused, own],
                                       "send": True},
                                 headers=headers(primary, "transition_lead"), timeout=30)

        assert response.status_code == 201, response.text
        by_ref = {r["child_ref"]: r for r in response.json()["records"]}
        assert "agency_involvement" in by_ref[ref(allowed)]["included"]
        assert "agency_involvement" in {w["section"] for w in by_ref[ref(refused)]["withheld"]}
        inbox = {i["child_ref"]: i for i in requests.get(
            f"{stack['base']}/api/v1/transitions/inbox", headers=headers(stack["secondary"], "transition_lead"),
            timeout=30).json()}
        [involvement] = inbox[ref(allowed)]["sections"]["agency_involvement"]
        assert (involvement["agency"], involvement["service"], involvement["status"]) == \
            (health, "school_nursing", "awaiting_consent")
        assert "low mood" not in str(inbox[ref(allowed)]) and "Withdrawn" not in str(inbox[ref(allowed)])
        assert "agency_involvement" not in inbox[ref(refused)]["sections"]
        assert inbox[ref(own)]["sections"]["agency_involvement"] == own["sections"]["agency_involvement"]
