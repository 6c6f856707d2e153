"""The transitions service's own settings, read once (beyond pont_shared.config.Settings).

`PONT_TRANSITIONS_ACK_DAYS` (default 10): how long the receiving school has to acknowledge
a record before it goes overdue. `PONT_TRANSITIONS_OVERDUE_CHECK_SECONDS` (default 60): how
often the overdue timer looks. `PONT_TRANSITIONS_REFERRALS_TIMEOUT_SECONDS` (default 5): how
long preparing waits for the referrals service's open involvement before doing without.
`PONT_TRANSITIONS_UNSENT_AFTER_SECONDS` (default 60): how long a send may stay between asking
consent and being recorded before the sweep (every `PONT_TRANSITIONS_UNSENT_SECONDS`, default
30) completes it; longer than any send takes, so the sweep does not race a live one.
The nameko config keys of the same meaning
(`TRANSITIONS_ACK_PERIOD_SECONDS`, `TRANSITIONS_OVERDUE_CHECK_SECONDS`,
`TRANSITIONS_REFERRALS_TIMEOUT_SECONDS`, `TRANSITIONS_UNSENT_AFTER_SECONDS`) win, for tests.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class TransitionsConfig:
    ack_period: timedelta
    overdue_check_seconds: float
    referrals_timeout_seconds: float = 5.0
    unsent_after: timedelta = timedelta(seconds=60)

    @classmethod
    def from_config(cls, config: dict, env: dict | None = None) -> TransitionsConfig:
        env = os.environ if env is None else env
        ack_seconds = config.get("TRANSITIONS_ACK_PERIOD_SECONDS")
        if ack_seconds is None:
            ack_seconds = float(env.get("PONT_TRANSITIONS_ACK_DAYS", "10")) * 86400
        check = config.get("TRANSITIONS_OVERDUE_CHECK_SECONDS")
        if check is None:
            check = float(env.get("PONT_TRANSITIONS_OVERDUE_CHECK_SECONDS", "60"))
        referrals_timeout = config.get("TRANSITIONS_REFERRALS_TIMEOUT_SECONDS")
        if referrals_timeout is None:
            referrals_timeout = float(env.get("PONT_TRANSITIONS_REFERRALS_TIMEOUT_SECONDS", "5"))
        unsent_after = config.get("TRANSITIONS_UNSENT_AFTER_SECONDS")
        if unsent_after is None:
            unsent_after = float(env.get("PONT_TRANSITIONS_UNSENT_AFTER_SECONDS", "60"))
        return cls(ack_period=timedelta(seconds=float(ack_seconds)), overdue_check_seconds=float(check),
                   referrals_timeout_seconds=float(referrals_timeout),
                   unsent_after=timedelta(seconds=float(unsent_after)))
