"""Booking metrics. Labels are outcomes and organisation codes: never a child."""
from __future__ import annotations

from prometheus_client import Counter, Gauge

BOOKINGS = Counter(
    "pont_bookings", "Booking requests by result (booked, slot_full, child_busy, unknown_slot, replayed)",
    ["result"],
)
UTILISATION = Gauge(
    "pont_session_utilisation_ratio",
    "Places booked over places offered, across a site's sessions of a service that have not ended",
    ["site", "offered_service"],
)
WAS_NOT_BROUGHT = Counter(
    "pont_appointments_was_not_brought", "Appointments recorded as was-not-brought (a safeguarding signal)",
    ["site"],
)
