"""schedule_session, book_appointment and cancel_appointment parse their requests through the shared
contract (pont_shared.contract.rpc.bookings): the real service container, a request sent to it
directly over RabbitMQ, its PostgreSQL database."""
from __future__ import annotations

import pytest
from nameko.standalone.rpc import ServiceRpcProxy
from sqlalchemy import create_engine, text

from bookings.service import BookingsService
from pont_shared.contract.errors import Invalid
from pont_shared.testing import signed

pytestmark = pytest.mark.integration

NURSE = {"sub": "nurse1", "org": "health:cardiff-vale", "roles": ["school_nurse"]}
SESSION = {"site": "school:6612001", "room": "Medical room", "service": "school_nursing", "date": "2027-03-02",
           "start": "09:00", "end": "10:00", "slot_minutes": 20, "capacity_per_slot": 1}


def counts(url: str) -> dict[str, int]:
    engine = create_engine(url)
    try:
        with engine.connect() as db:
            return {table: db.execute(text(f"SELECT count(*) FROM {table}")).scalar()  # noqa: S608 (fixed names)
                    for table in ("sessions", "slots", "outbox", "idempotency_keys")}
    finally:
        engine.dispose()


def test_a_malformed_session_is_refused_naming_each_field_and_changes_nothing(
        start_service, make_settings, postgres_url, service_name, broker_url):
    start_service(BookingsService, make_settings("bookings", postgres_url), name=service_name)
    without_room = {key: value for key, value in SESSION.items() if key != "room"}

    with ServiceRpcProxy(service_name, {"AMQP_URI": broker_url}) as bookings:
        with pytest.raises(Invalid) as refused:
            bookings.schedule_session(signed(NURSE), {**without_room, "start": "nine o'clock", "slot_minutes": 0},
                                      idempotency_key="k-1")
        with pytest.raises(Invalid) as not_an_object:
            bookings.schedule_session(signed(NURSE), ["not", "a", "session"])
        scheduled = bookings.schedule_session(signed(NURSE), SESSION)

    assert sorted(error["field"] for error in refused.value.errors) == ["room", "slot_minutes", "start"]
    assert "nine o'clock" not in str(refused.value.errors)
    assert [error["field"] for error in not_an_object.value.errors] == ["body"]
    assert len(scheduled["slots"]) == 3
    assert counts(postgres_url) == {"sessions": 1, "slots": 3, "outbox": 1, "idempotency_keys": 0}


def test_a_malformed_booking_is_refused_naming_each_field_and_books_nothing(
        start_service, make_settings, postgres_url, service_name, broker_url):
    start_service(BookingsService, make_settings("bookings", postgres_url), name=service_name)

    with ServiceRpcProxy(service_name, {"AMQP_URI": broker_url}) as bookings:
        slot = bookings.schedule_session(signed(NURSE), SESSION)["slots"][0]
        with pytest.raises(Invalid) as refused:
            bookings.book_appointment(signed(NURSE), {"slot_id": "", "child_ref": "c" * 65, "room": "Medical room"},
                                      idempotency_key="k-2")
        with pytest.raises(Invalid) as cancel_refused:
            bookings.cancel_appointment(signed(NURSE), "a-1", {"reason": "r" * 2001})
        booked = bookings.book_appointment(signed(NURSE), {"slot_id": slot["id"], "child_ref": "c_1"})

    assert sorted(error["field"] for error in refused.value.errors) == ["child_ref", "room", "slot_id"]
    assert [error["field"] for error in cancel_refused.value.errors] == ["reason"]
    assert (booked["status"], booked["child_ref"]) == ("booked", "c_1")
    assert counts(postgres_url) == {"sessions": 1, "slots": 3, "outbox": 2, "idempotency_keys": 0}
