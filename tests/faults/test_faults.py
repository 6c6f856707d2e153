"""Faults injected while concurrent clients use the public API; recovery needs no human.

Eight clients raise referrals through the gateway without pause, each retrying a request
that got a 5xx or lost its connection with the same `Idempotency-Key`, as real clients
do. Mid-stream one fault is injected: a service SIGKILLed, the broker stopped, PostgreSQL
restarted. Afterwards every service answers `/ready` within 30 s of the fault ending with
no manual step, the stream goes on, every referral a client saw accepted exists
exactly once in the referrals service and in the receiving agency's own store, and no
dead-letter queue holds anything (an outage pauses work; it spends no handler's retries).
"""
from __future__ import annotations

import os
import signal
import time

import pytest

from pont_shared.testing import wait_until

from .load import (
    AGENCY_LINK,
    RECOVERY_SECONDS,
    Clients,
    approve_agreement,
    assert_each_accepted_referral_exists_exactly_once,
    wait_until_recovered,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", autouse=True)
def agreement(stack):
    approve_agreement(stack)


@pytest.mark.parametrize("service", ["gateway", "consent", "referrals", "bookings", "transitions", AGENCY_LINK])
def test_a_service_killed_mid_stream_is_restarted_and_nothing_is_lost_or_doubled(stack, service):
    with Clients(stack) as clients:
        clients.wait_for(20, timeout=60)
        killed = stack.pid(service)

        os.kill(killed, signal.SIGKILL)
        fault_ended = time.monotonic()

        wait_until(lambda: stack.pid(service) not in (0, killed), timeout=RECOVERY_SECONDS,
                   message=f"{service} was not started again")
        took = wait_until_recovered(stack, fault_ended)
        clients.wait_for(20, timeout=60)
    print(f"{service}: SIGKILL → every service ready in {took:.1f} s; {len(clients.accepted)} referrals accepted")
    assert_each_accepted_referral_exists_exactly_once(stack, clients)


@pytest.mark.parametrize("seconds", [5, 60])
def test_a_broker_outage_mid_stream_pauses_work_and_loses_nothing(stack, seconds):
    with Clients(stack) as clients:
        clients.wait_for(20, timeout=60)
        processes = {name: stack.pid(name) for name in stack.ports}

        stack.broker.stop()
        outage_ends = time.monotonic() + seconds
        wait_until(lambda: not stack.ready("gateway"), timeout=10, message="the gateway did not notice the outage")
        wait_until(lambda: time.monotonic() >= outage_ends, timeout=seconds + 1, interval=0.5)
        stack.broker.start()
        fault_ended = time.monotonic()

        took = wait_until_recovered(stack, fault_ended)
        clients.wait_for(20, timeout=60)
    restarted = sorted(name for name, pid in processes.items() if stack.pid(name) != pid)
    print(f"broker down {seconds} s → every service ready in {took:.1f} s; restarted: {restarted or 'none'}")
    assert restarted == [], {name: stack.log_tail(name, 40) for name in restarted}  # each reconnected; none died
    assert_each_accepted_referral_exists_exactly_once(stack, clients)


def test_a_database_restart_mid_stream_pauses_work_and_loses_nothing(stack):
    with Clients(stack) as clients:
        clients.wait_for(20, timeout=60)
        processes = {name: stack.pid(name) for name in stack.ports}

        stack.postgres.restart()
        fault_ended = time.monotonic()

        took = wait_until_recovered(stack, fault_ended)
        clients.wait_for(20, timeout=60)
    restarted = sorted(name for name, pid in processes.items() if stack.pid(name) != pid)
    print(f"PostgreSQL restarted → every service ready in {took:.1f} s; restarted: {restarted or 'none'}")
    assert restarted == [], {name: stack.log_tail(name, 40) for name in restarted}
    assert_each_accepted_referral_exists_exactly_once(stack, clients)
