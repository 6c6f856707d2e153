"""Referrals' own Prometheus metrics. Labels are codes only."""
from __future__ import annotations

from prometheus_client import Counter, Gauge

RAISED = Counter("pont_referrals_raised_total", "Referrals raised, by the status they started in", ["status"])
OVERDUE = Counter("pont_referrals_overdue_total", "Referrals not acknowledged by their deadline", ["urgency"])
BY_STATUS = Gauge("pont_referrals_by_status", "Referrals in each status", ["status"])
