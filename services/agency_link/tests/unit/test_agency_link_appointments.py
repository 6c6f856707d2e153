"""The host school's copy of its pupils' appointments ends in the right state, whatever order the events arrive in."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from agency_link import handlers
from agency_link.orm import appointments, dsl_reviews, metadata, tables
from pont_shared.contract.events import AppointmentBooked, AppointmentCancelled, AppointmentWasNotBrought
from pont_shared.testing import in_memory_units_of_work

SCHOOL = "school:6612001"
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
DETAILS = dict(appointment_id="a-1", session_id="s-1", child_ref="c_" + "1" * 32, site=SCHOOL, room="Medical room",
               provider_org="health:cardiff-vale", starts_at=datetime(2026, 11, 24, 9, 0, tzinfo=UTC),
               ends_at=datetime(2026, 11, 24, 9, 15, tzinfo=UTC))
EVENTS = {"booked": AppointmentBooked(**DETAILS), "cancelled": AppointmentCancelled(**DETAILS),
          "was_not_brought": AppointmentWasNotBrought(**DETAILS)}


@pytest.fixture
def uow_factory():
    with in_memory_units_of_work(metadata, tables, "/pont/agency_link") as new:
        yield new


def handle(uow_factory, *statuses: str) -> str:
    for status in statuses:
        handlers.on_appointment(uow_factory(), EVENTS[status], status, SCHOOL, NOW)
    with uow_factory() as uow:
        return uow.session.execute(select(appointments.c.status)).scalar_one()


@pytest.mark.parametrize("final", ["cancelled", "was_not_brought"])
def test_a_later_state_replaces_booked(uow_factory, final):
    assert handle(uow_factory, "booked", final) == final


@pytest.mark.parametrize("final", ["cancelled", "was_not_brought"])
def test_a_booking_handled_after_its_later_state_does_not_undo_it(uow_factory, final):
    assert handle(uow_factory, final, "booked") == final


def test_was_not_brought_raises_one_review_for_the_dsl_in_either_order(uow_factory):
    handle(uow_factory, "was_not_brought", "booked")
    with uow_factory() as uow:
        reviews = uow.session.execute(select(dsl_reviews.c.kind, dsl_reviews.c.appointment_id)).all()
    assert [tuple(r) for r in reviews] == [("was_not_brought", "a-1")]


def test_another_schools_appointment_is_not_kept(uow_factory):
    handlers.on_appointment(uow_factory(), EVENTS["booked"], "booked", "school:6612999", NOW)
    with uow_factory() as uow:
        assert uow.session.execute(select(appointments)).all() == []
