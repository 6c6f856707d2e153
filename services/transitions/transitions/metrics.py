"""Transition metrics. Labels are statuses only: never a school pupil, child or name."""
from __future__ import annotations

from prometheus_client import Counter, Histogram

TRANSITIONS = Counter("pont_transitions_total", "Transition records by the status they reached", ["status"])
OVERDUE = Counter("pont_transitions_overdue_total", "Transition records that went unacknowledged past their period")
HANDOVER_LAG = Histogram(
    "pont_transitions_handover_lag_seconds", "From a record being sent to the receiving school acknowledging it",
    buckets=(60, 600, 3600, 6 * 3600, 86400, 3 * 86400, 7 * 86400, 14 * 86400, 30 * 86400),
)
WITHHELD = Counter("pont_transitions_sections_withheld_total", "Sections withheld for want of a basis", ["section"])
