"""Co-located bookings through the gateway, on the real RabbitMQ and PostgreSQL.

The bookings service and the gateway run as real nameko containers (unique names, a
fresh database); requests go over HTTP from separate clients.
"""
from __future__ import annotations

import dataclasses
import json
import random
import uuid
from datetime import UTC, datetime, timedelta

import eventlet
import pytest
import requests
from sqlalchemy import create_engine, text

from bookings.service import BookingsService
from gateway.service import GatewayService
from pont_shared.config import Settings
from pont_shared.contract.envelope import EVENTS_EXCHANGE
from pont_shared.identity import child_ref, make_upn
from pont_shared.messaging.wire import WireObserver
from pont_shared.testing import (
    MovableClock,
    bearer,
    fresh_database,
    http_url,
    random_name,
    signed,
    start_container,
    wait_until,
)
from pont_shared.testing.fixtures import delete_queues

pytestmark = pytest.mark.integration

PROVIDER = "health:cv" + uuid.uuid4().hex[:6]
CLINIC_DAY = "2027-03-02"
BEFORE_CLINICS = datetime(2027, 3, 1, 12, tzinfo=UTC)  # the service's time: every clinic is still to come
AFTER_CLINICS = datetime(2027, 3, 3, tzinfo=UTC)  # every clinic these tests schedule is over
ONE_MINUTE = timedelta(minutes=1)


def _settings(service: str, database_url: str, broker_url: str) -> Settings:
    env = {"AMQP_URI": broker_url, "PONT_RETRY_DELAYS": "0.05,0.1,0.2", "PONT_OUTBOX_POLL_SECONDS": "0.2",
           "PONT_LOG_LEVEL": "WARNING", "PONT_MAX_WORKERS": "30"}
    return dataclasses.replace(Settings.from_env(service, env, http_port=0), database_url=database_url)



@pytest.fixture(scope="module")
def pont():
    """bookings (own fresh PostgreSQL database) + gateway, under names no other test uses."""
    from pont_shared.testing import AMQP_URI

    with fresh_database("pont_bookings") as url:
        bookings_name, gateway_name = random_name("bookings"), random_name("gateway")
        clock = MovableClock(start=BEFORE_CLINICS)
        bookings = start_container(BookingsService, _settings("bookings", url, AMQP_URI), bookings_name,
                                   {"PONT_CLOCK": clock})
        gateway = start_container(GatewayService, _settings("gateway", "sqlite://", AMQP_URI), gateway_name,
                         {"PONT_BOOKINGS_SERVICE": bookings_name})
        engine = create_engine(url)
        try:
            yield Pont(http_url(gateway), http_url(bookings), engine, gateway.config["PONT_SETTINGS"], clock)
        finally:
            engine.dispose()
            for container in (gateway, bookings):
                container.stop()
                delete_queues(container)


@dataclasses.dataclass
class Pont:
    gateway: str
    bookings: str
    db: object
    settings: Settings
    clock: MovableClock

    def post(self, path, body=None, *, as_=None, client=None, data=None):
        headers = {**(as_ or nurse()), "Content-Type": "application/json"}
        return (client or requests).post(self.gateway + path, data=data if data is not None else json.dumps(body),
                                         headers=headers, timeout=60)

    def get(self, path, *, as_=None):
        return requests.get(self.gateway + path, headers=as_ or nurse(), timeout=30)

    def schedule(self, site, *, room="Medical room", start="09:00", end="10:00", slot_minutes=20, capacity=1,
                 on=CLINIC_DAY, as_=None):
        return self.post("/api/v1/sessions", {
            "site": site, "room": room, "service": "school_nursing", "date": on, "start": start, "end": end,
            "slot_minutes": slot_minutes, "capacity_per_slot": capacity}, as_=as_)

    def book(self, slot_id, upn, *, client=None, as_=None, referral_id=None):
        body = {"slot_id": slot_id, "child": child(upn)}
        if referral_id:
            body["referral_id"] = referral_id
        return self.post("/api/v1/appointments", body, client=client, as_=as_)

    def record(self, appointment_id, outcome, *, at=AFTER_CLINICS):
        """`attended` or `was-not-brought`, told to the service at `at` (by default once the clinic is over)."""
        with self.clock.at(at):
            return self.post(f"/api/v1/appointments/{appointment_id}/{outcome}")

    def scalar(self, sql, **params):
        with self.db.connect() as conn:
            return conn.execute(text(sql), params).scalar()


def nurse(org=PROVIDER):
    return bearer("nurse1", org, ["school_nurse"])


def school_site() -> str:
    return f"school:t{uuid.uuid4().hex[:10]}"


def upn() -> str:
    return make_upn(random.randrange(10**8, 10**9))


def child(upn_: str) -> dict:
    return {"upn": upn_, "given_name": "Cerys", "family_name": "Jones", "date_of_birth": "2015-03-14"}


def problem_fields(response) -> set[str]:
    assert response.headers["Content-Type"].startswith("application/problem+json")
    return {error["field"] for error in response.json().get("errors", [])}


class TestBookAppointment:
    def test_fifty_concurrent_requests_for_three_places_book_exactly_three(self, pont):
        slot = pont.schedule(school_site(), capacity=3).json()["slots"][0]
        upns = [upn() for _ in range(50)]

        def attempt(upn_):
            with requests.Session() as client:  # one client, one connection, per request
                response = pont.book(slot["id"], upn_, client=client)
                return response.status_code, response.headers.get("Content-Type", ""), response.json()

        results = list(eventlet.GreenPool(50).imap(attempt, upns))

        statuses = sorted(status for status, _, _ in results)
        assert statuses == [201] * 3 + [409] * 47
        refusals = [(ctype, body) for status, ctype, body in results if status == 409]
        assert all(ctype.startswith("application/problem+json") and body["status"] == 409 for ctype, body in refusals)
        assert pont.scalar("SELECT booked FROM slots WHERE id = :id", id=slot["id"]) == 3
        assert pont.scalar("SELECT count(*) FROM appointments WHERE slot_id = :id AND status = 'booked'",
                           id=slot["id"]) == 3

    def test_refuses_the_same_child_in_an_overlapping_slot_elsewhere(self, pont):
        site, pupil = school_site(), upn()
        first = pont.schedule(site, room="Medical room", start="09:00", end="10:00").json()["slots"][0]
        other = pont.schedule(site, room="Library", start="09:10", end="09:40", slot_minutes=30).json()["slots"][0]
        assert pont.book(first["id"], pupil).status_code == 201

        refused = pont.book(other["id"], pupil)

        assert refused.status_code == 409
        assert "overlapping" in refused.json()["detail"]
        assert pont.book(other["id"], upn()).status_code == 201

    def test_concurrent_bookings_of_one_child_at_one_time_in_different_rooms_book_only_one(self, pont):
        site, pupil = school_site(), upn()
        slots = [pont.schedule(site, room=f"Room {n}", capacity=5).json()["slots"][0]["id"] for n in range(6)]

        results = list(eventlet.GreenPool(6).imap(lambda slot_id: pont.book(slot_id, pupil).status_code, slots))

        assert sorted(results) == [201] + [409] * 5
        assert pont.scalar("SELECT count(*) FROM appointments WHERE child_ref = :c AND status = 'booked'",
                           c=child_ref(pupil, pont.settings.child_ref_secret)) == 1

    def test_cancelling_frees_the_place_for_the_next_booking(self, pont):
        slot = pont.schedule(school_site(), capacity=1).json()["slots"][0]
        booked = pont.book(slot["id"], upn()).json()
        assert pont.book(slot["id"], upn()).status_code == 409

        cancelled = pont.post(f"/api/v1/appointments/{booked['id']}/cancel", {"reason": "family rearranging"})
        rebooked = pont.book(slot["id"], upn())

        assert (cancelled.status_code, cancelled.json()["status"]) == (200, "cancelled")
        assert rebooked.status_code == 201
        assert pont.scalar("SELECT booked FROM slots WHERE id = :id", id=slot["id"]) == 1

    def test_an_idempotency_key_replays_the_first_booking(self, pont):
        slot = pont.schedule(school_site(), capacity=5).json()["slots"][0]
        body = json.dumps({"slot_id": slot["id"], "child": child(upn())})
        headers = {**nurse(), "Idempotency-Key": uuid.uuid4().hex, "Content-Type": "application/json"}

        first = requests.post(pont.gateway + "/api/v1/appointments", data=body, headers=headers, timeout=30)
        again = requests.post(pont.gateway + "/api/v1/appointments", data=body, headers=headers, timeout=30)

        assert (first.status_code, again.status_code) == (201, 201)
        assert first.json()["id"] == again.json()["id"]
        assert pont.scalar("SELECT booked FROM slots WHERE id = :id", id=slot["id"]) == 1


class TestScheduleSession:
    def test_answers_slots_and_refuses_an_overlapping_session_in_the_same_room(self, pont):
        site = school_site()
        created = pont.schedule(site, start="16:00", end="19:00", slot_minutes=30, capacity=4)

        clash = pont.schedule(site, start="18:30", end="20:00", slot_minutes=30)
        after = pont.schedule(site, start="19:00", end="20:00", slot_minutes=30)
        other_room = pont.schedule(site, room="Hall", start="16:00", end="19:00", slot_minutes=30)

        assert created.status_code == 201
        assert [(s["capacity"], s["booked"]) for s in created.json()["slots"]] == [(4, 0)] * 6
        assert clash.status_code == 409 and clash.json()["title"] == "Conflict"
        assert (after.status_code, other_room.status_code) == (201, 201)

    def test_concurrent_sessions_for_one_room_and_time_schedule_only_one(self, pont):
        site = school_site()

        results = list(eventlet.GreenPool(10).imap(lambda _: pont.schedule(site).status_code, range(10)))

        assert sorted(results) == [201] + [409] * 9


class TestOutcomes:
    def test_records_attended_and_was_not_brought_and_refuses_a_second_outcome(self, pont):
        site = school_site()
        slots = pont.schedule(site).json()["slots"]
        came = pont.book(slots[0]["id"], upn()).json()
        missed = pont.book(slots[1]["id"], upn()).json()

        attended = pont.record(came["id"], "attended")
        not_brought = pont.record(missed["id"], "was-not-brought")
        twice = pont.record(missed["id"], "attended")

        assert (attended.status_code, attended.json()["status"]) == (200, "attended")
        assert (not_brought.status_code, not_brought.json()["status"]) == (200, "was_not_brought")
        assert twice.status_code == 409
        statuses = {row[0]: row[1] for row in pont.db.connect().execute(text(
            "SELECT id, status FROM appointments WHERE id IN (:a, :b)"), {"a": came["id"], "b": missed["id"]})}
        assert statuses == {came["id"]: "attended", missed["id"]: "was_not_brought"}

    def test_an_outcome_before_the_appointment_starts_is_a_409_and_changes_nothing(self, pont):
        slot = pont.schedule(school_site()).json()["slots"][1]
        appointment = pont.book(slot["id"], upn()).json()
        starts_at = datetime.fromisoformat(slot["start"])

        early = [pont.record(appointment["id"], outcome, at=starts_at - ONE_MINUTE)
                 for outcome in ("attended", "was-not-brought")]
        on_time = pont.record(appointment["id"], "was-not-brought", at=starts_at)

        assert [r.status_code for r in early] == [409, 409]
        assert all(r.headers["Content-Type"].startswith("application/problem+json") for r in early)
        assert "started" in early[1].json()["detail"]
        assert (on_time.status_code, on_time.json()["status"]) == (200, "was_not_brought")


    def test_was_not_brought_reaches_the_broker_with_time_and_room_and_no_personal_data(self, pont):
        observer = WireObserver(pont.settings.amqp_uri, bindings=[(EVENTS_EXCHANGE, "pont.appointment.#")])
        try:
            site, pupil = school_site(), upn()
            slot = pont.schedule(site, room="Room 7").json()["slots"][0]
            appointment = pont.book(slot["id"], pupil).json()
            cancelled = pont.book(pont.schedule(site, room="Room 8").json()["slots"][2]["id"], upn()).json()

            pont.record(appointment["id"], "was-not-brought")
            pont.post(f"/api/v1/appointments/{cancelled['id']}/cancel", {"reason": "SENSITIVE-REASON-TEXT"})

            observer.wait_for(lambda seen: {"pont.appointment.was_not_brought.v1", "pont.appointment.cancelled.v1"}
                              <= {e.type for e in seen if e.data.get("site") == site}, timeout=10)
        finally:
            observer.close()
        event = next(e for e in observer.seen if e.type == "pont.appointment.was_not_brought.v1"
                     and e.data["appointment_id"] == appointment["id"])
        assert event.subject == child_ref(pupil, pont.settings.child_ref_secret)
        assert (event.data["site"], event.data["room"], event.data["provider_org"]) == (site, "Room 7", PROVIDER)
        assert event.data["starts_at"] and event.data["ends_at"]
        wire = b"".join(observer.raw)
        for personal in (pupil.encode(), b"Cerys", b"Jones", b"2015-03-14", b"SENSITIVE-REASON-TEXT"):
            assert personal not in wire


class TestAccess:
    def test_the_host_school_sees_the_session_and_other_organisations_do_not(self, pont):
        site = school_site()
        session = pont.schedule(site).json()

        school = pont.get(f"/api/v1/sessions/{session['id']}", as_=bearer("t1", site, ["school_staff"]))
        provider = pont.get(f"/api/v1/sessions/{session['id']}")
        stranger = pont.get(f"/api/v1/sessions/{session['id']}", as_=nurse("health:elsewhere"))

        assert school.status_code == 200 and len(school.json()["slots"]) == 3
        assert "appointments" not in school.json()
        assert provider.status_code == 200 and "appointments" in provider.json()
        assert stranger.status_code == 404

    def test_the_provider_and_the_host_school_list_their_sessions_and_nobody_else(self, pont):
        site, provider = school_site(), "health:l" + uuid.uuid4().hex[:8]
        first = pont.schedule(site, as_=nurse(provider)).json()
        second = pont.schedule(site, room="Library", start="08:00", end="08:40", on="2027-03-01",
                               as_=nurse(provider)).json()

        mine = pont.get("/api/v1/sessions", as_=nurse(provider))
        hosted = pont.get("/api/v1/sessions", as_=bearer("t1", site, ["school_staff"]))
        stranger = pont.get("/api/v1/sessions", as_=nurse("health:elsewhere" + uuid.uuid4().hex[:6]))

        assert mine.status_code == 200 and [s["id"] for s in mine.json()] == [second["id"], first["id"]]
        assert [s["id"] for s in hosted.json()] == [second["id"], first["id"]]
        assert [len(s["slots"]) for s in mine.json()] == [2, 3] and mine.json()[1]["room"] == "Medical room"
        assert stranger.status_code == 200 and stranger.json() == []
        assert requests.get(pont.gateway + "/api/v1/sessions", timeout=30).status_code == 401

    def test_only_provider_roles_schedule_and_only_the_provider_books(self, pont):
        site = school_site()
        slot = pont.schedule(site).json()["slots"][0]

        teacher = pont.schedule(site, start="11:00", end="12:00", as_=bearer("t1", site, ["school_staff"]))
        other_provider = pont.book(slot["id"], upn(), as_=nurse("health:elsewhere"))
        anonymous = requests.post(pont.gateway + "/api/v1/sessions", json={}, timeout=10)

        assert teacher.status_code == 403
        assert other_provider.status_code == 404
        assert anonymous.status_code == 401


class TestBadInput:
    @pytest.mark.parametrize("change, field", [
        ({"start": "10:00", "end": "09:00"}, "end"),
        ({"start": "09:00", "end": "10:00", "slot_minutes": 25}, "slot_minutes"),
        ({"capacity_per_slot": 0}, "capacity_per_slot"),
        ({"site": "health:cardiff-vale"}, "site"),
        ({"date": "2027-02-30"}, "date"),
        ({"start": "25:00"}, "start"),
        ({"unexpected": 1}, "unexpected"),
    ])
    def test_a_session_that_cannot_be_built_is_a_422_naming_the_field(self, pont, change, field):
        body = {"site": school_site(), "room": "Medical room", "service": "school_nursing", "date": CLINIC_DAY,
                "start": "09:00", "end": "10:00", "slot_minutes": 20, "capacity_per_slot": 1, **change}

        response = pont.post("/api/v1/sessions", body)

        assert response.status_code == 422
        assert field in problem_fields(response)

    def test_an_unknown_slot_or_appointment_or_session_is_a_404(self, pont):
        unknown = str(uuid.uuid4())

        responses = [pont.book(unknown, upn()), pont.post(f"/api/v1/appointments/{unknown}/attended"),
                     pont.post(f"/api/v1/appointments/{unknown}/cancel", {"reason": "x"}),
                     pont.get(f"/api/v1/sessions/{unknown}")]

        assert [r.status_code for r in responses] == [404] * 4
        assert all(r.headers["Content-Type"].startswith("application/problem+json") for r in responses)

    def test_a_bad_child_or_body_is_refused_not_a_500(self, pont):
        slot = pont.schedule(school_site()).json()["slots"][0]

        bad_upn = pont.post("/api/v1/appointments", {"slot_id": slot["id"], "child": child("A123")})
        no_child = pont.post("/api/v1/appointments", {"slot_id": slot["id"]})
        not_json = pont.post("/api/v1/appointments", data="{not json")
        no_reason = pont.post(f"/api/v1/appointments/{uuid.uuid4()}/cancel", {})

        assert (bad_upn.status_code, problem_fields(bad_upn)) == (422, {"child.upn"})
        assert "A123" not in bad_upn.text
        assert (no_child.status_code, problem_fields(no_child)) == (422, {"child"})
        assert not_json.status_code == 400
        assert (no_reason.status_code, problem_fields(no_reason)) == (422, {"reason"})


class TestMetrics:
    def test_bookings_utilisation_and_was_not_brought_are_exposed_without_child_ids(self, pont):
        site, pupil = school_site(), upn()
        slot = pont.schedule(site, capacity=2).json()["slots"][0]
        appointment = pont.book(slot["id"], pupil).json()
        pont.record(appointment["id"], "was-not-brought")

        exposition = requests.get(pont.bookings + "/metrics", timeout=10).text

        assert 'pont_bookings_total{result="booked"}' in exposition
        assert f'pont_session_utilisation_ratio{{offered_service="school_nursing",site="{site}"}} 0.1666' in exposition
        assert f'pont_appointments_was_not_brought_total{{site="{site}"}} 1.0' in exposition
        assert appointment["child_ref"] not in exposition and pupil not in exposition


@pytest.fixture
def school_link(pont):
    """The host school's own agency_link (its own database), for a school no other test uses."""
    from agency_link.service import AgencyLinkService
    from pont_shared.testing import AMQP_URI

    site = school_site()
    with fresh_database("pont_bookings_link") as url:
        name = random_name("agency_link")
        container = start_container(AgencyLinkService, _settings(name, url, AMQP_URI), name, {"org": site})
        engine = create_engine(url)
        try:
            yield site, name, engine
        finally:
            engine.dispose()
            container.stop()
            delete_queues(container)


class TestSchoolLink:
    def test_the_school_learns_time_and_room_and_its_dsl_gets_the_was_not_brought(self, pont, school_link):
        from nameko.standalone.rpc import ServiceRpcProxy

        site, link_name, link_db = school_link
        pupil = upn()
        slot = pont.schedule(site, room="Medical room").json()["slots"][1]
        appointment = pont.book(slot["id"], pupil).json()
        pont.record(appointment["id"], "was-not-brought")
        dsl = {"sub": "dsl1", "org": site, "roles": ["dsl"]}

        with ServiceRpcProxy(link_name, {"AMQP_URI": pont.settings.amqp_uri}) as link:
            reviews = wait_until(lambda: [r for r in link.dsl_reviews(signed(dsl))
                                          if r["appointment_id"] == appointment["id"]], timeout=10)
            stored = link.appointments(signed(dsl), child_ref=appointment["child_ref"])

        assert reviews[0]["kind"] == "was_not_brought" and reviews[0]["child_ref"] == appointment["child_ref"]
        assert [(a["appointment_id"], a["room"], a["status"]) for a in stored] == [
            (appointment["id"], "Medical room", "was_not_brought")]
        assert stored[0]["starts_at"] and stored[0]["ends_at"]
        with link_db.connect() as conn:
            row = conn.execute(text("SELECT * FROM pupil_appointments WHERE appointment_id = :id"),
                               {"id": appointment["id"]}).mappings().one()
        assert not {"reason", "service", "referral_id", "cancel_reason"} & set(row.keys())
        assert pupil not in json.dumps({k: str(v) for k, v in row.items()})
