"""An agency_link container on the real broker and PostgreSQL: its own queues, its own store."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from nameko.standalone.rpc import ClusterRpcProxy
from sqlalchemy import MetaData, select
from sqlalchemy.orm import sessionmaker

from agency_link.orm import withdrawn_consents
from agency_link.service import AgencyLinkService
from pont_shared.config import safe_name
from pont_shared.contract.errors import Forbidden, Invalid, NotFound
from pont_shared.contract.events import (
    AppointmentBooked,
    AppointmentWasNotBrought,
    ConsentWithdrawn,
    DisclosureDelivered,
)
from pont_shared.identity import make_upn
from pont_shared.messaging.db import define_messaging_tables, make_engine
from pont_shared.messaging.outbox import OutboxRelay
from pont_shared.messaging.uow import UnitOfWork
from pont_shared.testing import fresh_database, signed, wait_until

pytestmark = pytest.mark.integration


class Publisher:
    """A stand-in producer: its own outbox, relayed to the real broker."""

    def __init__(self, url: str, broker_url: str):
        self.metadata = MetaData()
        self.tables = define_messaging_tables(self.metadata)
        self.engine = make_engine(url)
        self.metadata.create_all(self.engine)
        self.relay = OutboxRelay(self.engine, self.tables.outbox, broker_url, "probe", poll_seconds=0.1)

    def emit(self, *payloads) -> None:
        with UnitOfWork(sessionmaker(self.engine), self.tables, source="/pont/probe", on_commit=self.relay.wake) as uow:
            for payload in payloads:
                uow.emit(payload)
            uow.commit()
        self.relay.publish_handed()


@pytest.fixture
def link(start_service, make_settings, postgres_url, broker_url):
    school = f"school:a{uuid.uuid4().hex[:8]}"
    name = f"agency_link_{safe_name(school)}"
    start_service(AgencyLinkService, make_settings(name, postgres_url), name=name, extra_config={"org": school})
    with fresh_database("pont_probe") as url:
        publisher = Publisher(url, broker_url)
        with ClusterRpcProxy({"AMQP_URI": broker_url}) as cluster:
            yield school, getattr(cluster, name), publisher
        publisher.engine.dispose()


def appointment(event_cls, school: str, site: str | None = None):
    start = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    return event_cls(appointment_id=str(uuid.uuid4()), session_id="s1", child_ref="c_pupil", site=site or school,
                     room="Room 4", provider_org="health:cv", starts_at=start, ends_at=start + timedelta(minutes=20))


class TestHostSchool:
    def test_learns_time_and_room_of_its_pupils_appointments_and_a_was_not_brought_reaches_the_dsl(self, link):
        school, rpc, publisher = link
        dsl = {"sub": "dsl1", "org": school, "roles": ["dsl"]}
        booked = appointment(AppointmentBooked, school)
        elsewhere = appointment(AppointmentBooked, school, site="school:elsewhere")
        missed = appointment(AppointmentWasNotBrought, school)

        publisher.emit(booked, elsewhere, missed)

        listed = wait_until(lambda: len(rpc.appointments(signed(dsl))) == 2 and rpc.appointments(signed(dsl)))
        assert {a["appointment_id"] for a in listed} == {booked.appointment_id, missed.appointment_id}
        assert set(listed[0]) == {"appointment_id", "child_ref", "room", "provider_org", "starts_at", "ends_at",
                                  "status"}
        reviews = rpc.dsl_reviews(signed(dsl))
        assert [r["appointment_id"] for r in reviews] == [missed.appointment_id]
        with pytest.raises(Forbidden):
            rpc.dsl_reviews(signed({"sub": "t1", "org": school, "roles": ["school_staff"]}))


class TestDisclosures:
    def test_only_its_own_disclosures_arrive_and_another_org_sees_nothing(self, link):
        school, rpc, publisher = link
        mine = DisclosureDelivered(disclosure_id=str(uuid.uuid4()), child_ref="c_1", to_org=school,
                                   from_org="school:x", purpose="referral", subject_kind="referral",
                                   subject_id=str(uuid.uuid4()), basis="consent", basis_ref="k1",
                                   content={"categories": {"contact": {"given_name": "Ffion"}}})
        other = mine.model_copy(update={"disclosure_id": str(uuid.uuid4()), "to_org": "school:someone-else"})

        publisher.emit(other, mine)

        staff = {"sub": "t1", "org": school, "roles": ["school_staff"]}
        items = wait_until(lambda: rpc.inbox("referral", signed(staff)))
        assert [i["disclosure_id"] for i in items] == [mine.disclosure_id]
        with pytest.raises(NotFound):
            rpc.inbox("referral", signed({"sub": "x", "org": "school:someone-else", "roles": ["school_staff"]}))


class TestDecisions:
    """decide takes an AgencyDecision (pont_shared.contract.rpc.agency_link): a bad field is refused
    naming it and nothing is decided; a good one is recorded and answered as a DecisionView."""

    def test_a_malformed_decision_is_refused_naming_each_field_and_changes_nothing(self, link):
        school, rpc, publisher = link
        referral_id = str(uuid.uuid4())
        publisher.emit(DisclosureDelivered(
            disclosure_id=str(uuid.uuid4()), child_ref="c_2", to_org=school, from_org="school:x", purpose="referral",
            subject_kind="referral", subject_id=referral_id, basis="consent", basis_ref="k1",
            content={"categories": {"contact": {"given_name": "Ffion"}}}))
        staff = {"sub": "t1", "org": school, "roles": ["school_staff"]}
        wait_until(lambda: rpc.inbox("referral", signed(staff)))

        with pytest.raises(Invalid) as refused:
            rpc.decide({"subject_id": referral_id, "decision": "shredded", "reason": "x" * 2001,
                        "colour": "red"}, signed(staff))
        assert sorted(error["field"] for error in refused.value.errors) == ["colour", "decision", "reason"]
        assert "shredded" not in str(refused.value.errors)
        [item] = rpc.inbox("referral", signed(staff))
        assert item["status"] == "received"

        decided = rpc.decide({"subject_id": referral_id, "decision": "declined", "reason": "Already open to us.",
                              "reason_code": "already_involved"}, signed(staff))
        assert decided == {"id": referral_id, "status": "declined"}
        [item] = rpc.inbox("referral", signed(staff))
        assert item["status"] == "declined" and item["history"][-1]["code"] == "already_involved"


class TestWithdrawalHandledBeforeTheDisclosure:
    def test_the_copy_arrives_restricted(self, link, postgres_url):
        school, rpc, publisher = link                    # postgres_url: the link's own database
        child, consent_id = f"c_{uuid.uuid4().hex}", str(uuid.uuid4())
        engine = make_engine(postgres_url)
        publisher.emit(ConsentWithdrawn(consent_id=consent_id, child_ref=child, recipients=[school]))
        try:
            def withdrawal_handled() -> bool:
                with engine.connect() as db:
                    return db.execute(select(withdrawn_consents.c.consent_id).where(
                        withdrawn_consents.c.consent_id == consent_id)).first() is not None

            wait_until(withdrawal_handled, timeout=10)
        finally:
            engine.dispose()

        publisher.emit(DisclosureDelivered(
            disclosure_id=str(uuid.uuid4()), child_ref=child, to_org=school, from_org="school:x", purpose="referral",
            subject_kind="referral", subject_id=str(uuid.uuid4()), basis="consent", basis_ref=consent_id,
            content={"categories": {"contact": {"given_name": "Ffion"}}}))

        staff = {"sub": "t1", "org": school, "roles": ["school_staff"]}
        [item] = wait_until(lambda: rpc.inbox("referral", signed(staff)), timeout=10)
        assert item["restricted"] and item["content"] is None


def transfer(school: str, upns: list[str], source_file: str | None = None) -> dict:
    return {"source_file": source_file or f"sha256:{uuid.uuid4().hex}", "from_school": "school:6610001",
            "to_school": school,
            "pupils": [{"identifiers": {"upn": upn, "given_name": "Ffion", "family_name": "Jones",
                                        "date_of_birth": "2014-05-03"},
                        "attendance": {"year": 2025, "sessions_possible": 380, "sessions_authorised": 4,
                                       "sessions_unauthorised": 1},
                        "wellbeing": {"notes": "not a CTF section: never stored"}} for upn in upns]}


class TestImportedTransfers:
    def test_a_file_imports_once_per_pupil_and_holds_only_the_ctf_sections(self, link):
        school, rpc, _ = link
        lead = {"sub": "t1", "org": school, "roles": ["transition_lead"]}
        upns = [make_upn(n, prefix="702") for n in range(1, 4)]
        first_file = transfer(school, upns + upns[:1])          # one pupil listed twice

        first = rpc.import_transfer(first_file, signed(lead))
        again = rpc.import_transfer(first_file, signed({**lead, "roles": ["dsl"]}))
        other_file = rpc.import_transfer(transfer(school, upns[:1]), signed(lead))

        assert (first["imported"], first["already_held"]) == (3, 0)
        assert (again["imported"], again["already_held"]) == (0, 3)
        assert (other_file["imported"], other_file["already_held"]) == (1, 0)
        held = [i for i in rpc.imported_transfers(signed(lead)) if i["source_file"] == first_file["source_file"]]
        assert len(held) == 3
        assert all(set(i["sections"]) == {"identifiers", "attendance"} for i in held)

    def test_who_may_import(self, link):
        school, rpc, _ = link
        upns = [make_upn(9, prefix="703")]
        with pytest.raises(Forbidden):
            rpc.import_transfer(transfer(school, upns), signed({"sub": "s", "org": school, "roles": ["school_staff"]}))
        with pytest.raises(NotFound):
            rpc.import_transfer(transfer(school, upns), signed({"sub": "x", "org": "school:else", "roles": ["dsl"]}))
        with pytest.raises(NotFound):
            rpc.imported_transfers(signed({"sub": "x", "org": "school:else", "roles": ["dsl"]}))

    def test_a_file_for_another_school_or_with_a_bad_upn_is_invalid_and_stores_nothing(self, link):
        school, rpc, _ = link
        lead = {"sub": "t1", "org": school, "roles": ["transition_lead"]}
        before = len(rpc.imported_transfers(signed(lead)))

        with pytest.raises(Invalid):
            rpc.import_transfer(transfer("school:6619999", [make_upn(5, prefix="704")]), signed(lead))
        with pytest.raises(Invalid):
            rpc.import_transfer(transfer(school, [make_upn(6, prefix="704"), "A123"]), signed(lead))

        assert len(rpc.imported_transfers(signed(lead))) == before
