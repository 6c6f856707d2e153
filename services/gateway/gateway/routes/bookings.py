"""Co-located bookings: sessions in a school room, slots and appointments (API.md)."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from pont_shared.contract.errors import Forbidden
from pont_shared.contract.rpc.agency_link import PupilAppointmentView, ReviewView
from pont_shared.contract.rpc.bookings import (
    AppointmentView,
    BookAppointment,
    CancelAppointment,
    SessionIn,
    SessionView,
)
from pont_shared.contract.rpc.referrals import FoundChild
from pont_shared.messaging.dependencies import ChildRefs

from ..api import api, assertion, sent
from ..rpc import AgencyLinks, ServiceRpc
from ..schemas import Child

PROVIDER_ROLES = ("school_nurse", "health_practitioner", "social_worker", "youth_worker")
HOST_SCHOOL_ROLES = ("school_staff", "dsl")
SCHOOL_ZONE = ZoneInfo("Europe/London")


class AppointmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slot_id: str = Field(min_length=1, max_length=64)
    child: Child
    referral_id: str | None = Field(default=None, max_length=64)


class DayQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    date: dt.date | None = Field(None, ge=dt.date(2000, 1, 1), le=dt.date(2100, 12, 31),
                                 description="the school day, YYYY-MM-DD; today (Europe/London) when absent")


class CancelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2000)


SESSION_EXAMPLE = {"site": "school:6612001", "room": "Medical room", "service": "school_nursing",
                   "date": "2026-12-01", "start": "09:00", "end": "12:00", "slot_minutes": 20,
                   "capacity_per_slot": 1}
APPOINTMENT_EXAMPLE = {"slot_id": "5b0c3f7e-0c39-4d2e-9a7e-2f4f0c1b2a11",
                       "child": {"upn": "A661000000012", "given_name": "Cerys", "family_name": "Jones",
                                 "date_of_birth": "2015-03-14"},
                       "referral_id": None}


class BookingRoutes:
    """Sessions and appointments of co-located services on a school site."""

    bookings_rpc = ServiceRpc("bookings", name_key="PONT_BOOKINGS_SERVICE")
    booking_referrals_rpc = ServiceRpc("referrals")
    booking_child_refs = ChildRefs()
    booking_agencies = AgencyLinks()

    @api("POST", "/api/v1/sessions", roles=PROVIDER_ROLES, body=SessionIn, status=201, idempotent=True,
         example=SESSION_EXAMPLE, summary="Schedule a session in a school room, cut into slots",
         responses={409: "the room is taken at an overlapping time"})
    def schedule_session(self, caller, body, idempotency_key=None):
        return 201, sent(SessionView.read(self.bookings_rpc.schedule_session(
            assertion(caller), body.wire(), idempotency_key=idempotency_key)))

    @api("GET", "/api/v1/sessions", summary="The sessions the caller's organisation provides or hosts, "
         "soonest first, with their slots")
    def list_sessions(self, caller, body):
        return [sent(session) for session in SessionView.read_many(self.bookings_rpc.list_sessions(assertion(caller)))]

    @api("GET", "/api/v1/sessions/{id}", summary="A session with its slots (provider or host school)",
         responses={404: "no such session, or not the caller's to see"})
    def get_session(self, caller, body, id):
        return sent(SessionView.read(self.bookings_rpc.get_session(assertion(caller), id)))

    @api("POST", "/api/v1/appointments", roles=PROVIDER_ROLES, body=AppointmentIn, status=201, idempotent=True,
         example=APPOINTMENT_EXAMPLE, summary="Book a child into a slot",
         responses={404: "no such slot", 409: "the slot is full or the child is booked elsewhere at that time"})
    def book_appointment(self, caller, body, idempotency_key=None):
        booking = BookAppointment(slot_id=body.slot_id, child_ref=self.booking_child_refs(body.child.upn),
                                  referral_id=body.referral_id)
        return 201, sent(AppointmentView.read(self.bookings_rpc.book_appointment(
            assertion(caller), booking.wire(), idempotency_key=idempotency_key)))

    @api("POST", "/api/v1/appointments/{id}/cancel", roles=PROVIDER_ROLES, body=CancelIn,
         example={"reason": "family asked to rearrange"}, summary="Cancel an appointment: its place is freed",
         responses={404: "no such appointment", 409: "not booked"})
    def cancel_appointment(self, caller, body, id):
        cancellation = CancelAppointment(reason=body.reason)
        return sent(AppointmentView.read(self.bookings_rpc.cancel_appointment(
            assertion(caller), id, cancellation.wire())))

    @api("POST", "/api/v1/appointments/{id}/attended", roles=PROVIDER_ROLES, example={},
         summary="Record that the child attended", responses={404: "no such appointment", 409: "not booked"})
    def record_attended(self, caller, body, id):
        return sent(AppointmentView.read(self.bookings_rpc.record_attended(assertion(caller), id)))

    @api("POST", "/api/v1/appointments/{id}/was-not-brought", roles=PROVIDER_ROLES, example={},
         summary="Record that the child was not brought (raised to the host school's DSL)",
         responses={404: "no such appointment", 409: "not booked"})
    def record_was_not_brought(self, caller, body, id):
        return sent(AppointmentView.read(self.bookings_rpc.record_was_not_brought(assertion(caller), id)))

    @api("GET", "/api/v1/reviews", roles=("dsl",),
         summary="The DSL's review queue: was-not-brought appointments at the caller's own school")
    def dsl_reviews(self, caller, body):
        if caller.org_kind != "school":
            raise Forbidden("the review queue is a school's")
        return [sent(item) for item in ReviewView.read_many(self.booking_agencies(caller.org).dsl_reviews(
            assertion(caller)))]

    @api("GET", "/api/v1/out-of-lessons", roles=HOST_SCHOOL_ROLES, query=DayQuery,
         summary="The host school's pupils out of lessons on a school day for appointments on its site, soonest "
                 "first: [{appointment_id, start, end, room, status, child_ref, pupil}] — when and where, never why "
                 "(no service, provider or referral). `pupil` is {upn, given_name, family_name} as the school's own "
                 "referrals last gave them, or null for a pupil the school has not referred; cancelled appointments "
                 "are left out",
         responses={422: "a date that is not YYYY-MM-DD"})
    def out_of_lessons(self, caller, body, query):
        if caller.org_kind != "school":
            raise Forbidden("pupils out of lessons are a host school's list")
        day = query.date or dt.datetime.now(SCHOOL_ZONE).date()
        booked = [item for item in PupilAppointmentView.read_many(self.booking_agencies(caller.org).appointments(
            assertion(caller), None, day.isoformat())) if item.status != "cancelled"]
        pupils = {ref: self._own_pupil(caller, ref) for ref in {item.child_ref for item in booked}}
        return [{"appointment_id": item.appointment_id, "start": item.starts_at.astimezone(SCHOOL_ZONE).isoformat(),
                 "end": item.ends_at.astimezone(SCHOOL_ZONE).isoformat(), "room": item.room, "status": item.status,
                 "child_ref": item.child_ref, "pupil": pupils[item.child_ref]} for item in booked]

    def _own_pupil(self, caller, child_ref: str) -> dict | None:
        """The pupil as the school's own referrals name them; None when the school has not referred them."""
        for child in FoundChild.read_many(self.booking_referrals_rpc.find_children(assertion(caller),
                                                                                   child_ref=child_ref)):
            return {"upn": child.upn, "given_name": child.given_name, "family_name": child.family_name}
        return None
