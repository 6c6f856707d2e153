"""The booking rules in plain Python: no broker, no database."""
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from bookings.domain import (
    Appointment,
    ChildBusy,
    InvalidRequest,
    NotBooked,
    NotStarted,
    RoomTaken,
    Session,
    SlotFull,
)

LONDON = ZoneInfo("Europe/London")
AFTER_CLINIC = datetime(2026, 12, 1, 12, tzinfo=LONDON)


def schedule(room="Medical room", start=time(9), end=time(10), slot_minutes=20, capacity=1, on=date(2026, 12, 1)):
    return Session.schedule(provider_org="health:cardiff-vale", site="school:6612001", room=room,
                            service="school_nursing", on=on, start=start, end=end, slot_minutes=slot_minutes,
                            capacity_per_slot=capacity, zone=LONDON)


class TestScheduleSession:
    def test_cuts_the_session_into_equal_slots(self):
        session = schedule(start=time(9), end=time(10), slot_minutes=20, capacity=3)

        assert [(s.starts_at.time(), s.ends_at.time(), s.capacity) for s in session.slots] == [
            (time(9, 0), time(9, 20), 3), (time(9, 20), time(9, 40), 3), (time(9, 40), time(10, 0), 3)]

    def test_allows_a_session_outside_school_hours(self):
        session = schedule(start=time(18), end=time(20), slot_minutes=30)

        assert len(session.slots) == 4

    def test_reads_times_without_offset_as_school_local_time(self):
        summer = schedule(on=date(2026, 7, 1), start=time(9), end=time(10))

        assert summer.starts_at.utcoffset().total_seconds() == 3600

    @pytest.mark.parametrize("kwargs, field", [
        ({"start": time(10), "end": time(9)}, "end"),
        ({"start": time(10), "end": time(10)}, "end"),
        ({"slot_minutes": 25}, "slot_minutes"),
        ({"slot_minutes": 0}, "slot_minutes"),
        ({"capacity": 0}, "capacity_per_slot"),
        ({"room": "  "}, "room"),
    ])
    def test_refuses_input_no_session_can_be_built_from(self, kwargs, field):
        with pytest.raises(InvalidRequest) as refused:
            schedule(**kwargs)

        assert refused.value.field == field

    def test_refuses_an_occupied_room_at_an_overlapping_time(self):
        existing = schedule(start=time(9), end=time(10))

        with pytest.raises(RoomTaken):
            schedule(start=time(9, 40), end=time(11)).check_room_free([existing])

    def test_allows_back_to_back_sessions_and_other_rooms(self):
        existing = schedule(start=time(9), end=time(10))

        schedule(start=time(10), end=time(11)).check_room_free([existing])
        schedule(room="Library", start=time(9), end=time(10)).check_room_free([existing])


class TestBookAppointment:
    def test_refuses_a_full_slot(self):
        slot = schedule(capacity=2).slots[0]
        Appointment.book(slot, "c_a", [])
        Appointment.book(slot, "c_b", [])

        with pytest.raises(SlotFull):
            Appointment.book(slot, "c_c", [])
        assert slot.booked == 2

    def test_refuses_a_child_already_booked_at_an_overlapping_time(self):
        first = schedule().slots[0]
        elsewhere = schedule(room="Library", start=time(9, 10), end=time(9, 30), slot_minutes=20).slots[0]
        booked = Appointment.book(first, "c_a", [])

        with pytest.raises(ChildBusy):
            Appointment.book(elsewhere, "c_a", [booked])
        assert elsewhere.booked == 0

    def test_a_cancelled_appointment_frees_the_place_and_the_childs_time(self):
        slot = schedule(capacity=1).slots[0]
        booked = Appointment.book(slot, "c_a", [])

        booked.cancel(slot)
        again = Appointment.book(slot, "c_a", [booked])

        assert (booked.status, again.status, slot.booked) == ("cancelled", "booked", 1)


class TestRecordOutcome:
    def test_records_attended_and_was_not_brought_once(self):
        slots = schedule(capacity=1).slots
        came, missed = Appointment.book(slots[0], "c_a", []), Appointment.book(slots[1], "c_b", [])

        came.mark_attended(AFTER_CLINIC)
        missed.mark_was_not_brought(AFTER_CLINIC)

        assert (came.status, missed.status) == ("attended", "was_not_brought")
        with pytest.raises(NotBooked):
            missed.cancel(slots[1])

    def test_an_outcome_cannot_be_recorded_before_the_appointment_starts(self):
        slot = schedule(capacity=1).slots[1]
        appointment = Appointment.book(slot, "c_a", [])

        for record in (appointment.mark_attended, appointment.mark_was_not_brought):
            with pytest.raises(NotStarted):
                record(slot.starts_at - timedelta(minutes=1))
        appointment.mark_was_not_brought(slot.starts_at)

        assert appointment.status == "was_not_brought"
