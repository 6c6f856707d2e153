"""Bookings' settings beyond pont_shared.config.Settings."""
from __future__ import annotations

from zoneinfo import ZoneInfo

# Session times given without an offset are the school's local time.
SCHOOL_ZONE = ZoneInfo("Europe/London")
