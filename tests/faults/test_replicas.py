"""Two copies of every service on one database and broker (`PONT_REPLICAS=2`), under the fault suite's load.

Each service and each agency link runs twice, as `make start` runs them with `PONT_REPLICAS=2`:
the copies share their service's database, queues and broker user. The suite's clients raise
referrals through both gateways while a copy of referrals and one of the receiving agency link
are SIGKILLed mid-stream. What must hold: both copies do work; every write a client saw
accepted lands exactly once, in referrals and in the agency's own store; with no fault
injected, the two outbox relays publish each event once (a tap on the exchanges sees no id
twice); and each referral past its deadline is escalated exactly once although both copies'
timers look for overdue referrals ten times a second.
"""
from __future__ import annotations

import os
import signal
import time
from collections import Counter

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from pont_shared.contract.envelope import DISCLOSURES_EXCHANGE, EVENTS_EXCHANGE
from pont_shared.contract.events import ReferralOverdue, ReferralSent
from pont_shared.messaging.wire import WireObserver
from pont_shared.testing import wait_until

from .conftest import running_stack
from .load import (
    AGENCY_LINK,
    Clients,
    approve_agreement,
    assert_each_accepted_referral_exists_exactly_once,
    rows,
    wait_until_recovered,
)

pytestmark = pytest.mark.integration

REPLICAS = 2


@pytest.fixture(scope="module")
def stack(fault_broker, fault_postgres):
    with running_stack(fault_broker, fault_postgres, replicas=REPLICAS,
                       settings={"PONT_REFERRALS_OVERDUE_SECONDS": "0.1"}) as stack:
        approve_agreement(stack)
        yield stack


@pytest.fixture
def wire(stack):
    """Every event published to the shared exchanges from now on, disclosures included."""
    observer = WireObserver(stack.amqp_uri, bindings=[(EVENTS_EXCHANGE, "#"), (DISCLOSURES_EXCHANGE, "#")])
    yield observer
    observer.close()


def copies(service: str) -> list[str]:
    return [service] + [f"{service}-{k}" for k in range(2, REPLICAS + 1)]


def metric(stack, process: str, name: str) -> float:
    """The sum of a counter's samples (every label) on one process's `/metrics`."""
    text = requests.get(f"http://127.0.0.1:{stack.ports[process]}/metrics", timeout=10).text
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == name)


def test_two_copies_share_the_work_and_the_relays_publish_each_event_once(stack, wire):
    with Clients(stack) as clients:
        clients.wait_for(80, timeout=180)
    assert_each_accepted_referral_exists_exactly_once(stack, clients)

    accepted = {body["id"] for body in clients.accepted.values()}
    wait_until(lambda: accepted <= {e.data["referral_id"] for e in wire.of_type(ReferralSent.TYPE)}, timeout=30,
               message="not every accepted referral's referral.sent was published")
    published = Counter(envelope.id for envelope in wire.seen)
    assert [event_id for event_id, times in published.items() if times > 1] == []
    for service, counter in (("gateway", "pont_entrypoint_calls_total"),
                             ("referrals", "pont_referrals_raised_total"),
                             ("consent", "pont_entrypoint_calls_total"),
                             (AGENCY_LINK, "pont_events_handled_total")):
        assert {process: metric(stack, process, counter) > 0 for process in copies(service)} == \
            dict.fromkeys(copies(service), True), f"each copy of {service} did some of the work"


@pytest.mark.parametrize("service", ["referrals", AGENCY_LINK])
def test_a_copy_killed_mid_stream_leaves_the_other_working_and_nothing_lost_or_doubled(stack, service):
    with Clients(stack) as clients:
        clients.wait_for(20, timeout=60)
        killed = stack.pid(f"{service}-2")

        os.kill(killed, signal.SIGKILL)
        fault_ended = time.monotonic()
        clients.wait_for(20, timeout=60)   # the other copy carries the stream meanwhile

        wait_until(lambda: stack.pid(f"{service}-2") not in (0, killed), timeout=30,
                   message=f"{service}-2 was not started again")
        took = wait_until_recovered(stack, fault_ended)
        clients.wait_for(20, timeout=60)
    print(f"{service}-2: SIGKILL → every copy ready in {took:.1f} s; {len(clients.accepted)} referrals accepted")
    assert_each_accepted_referral_exists_exactly_once(stack, clients)


def test_each_overdue_referral_is_escalated_once_by_two_copies(stack, wire):
    with Clients(stack) as clients:
        clients.wait_for(40, timeout=120)
    accepted = {body["id"] for body in clients.accepted.values()}
    escalated_before = sum(metric(stack, process, "pont_referrals_overdue_total") for process in copies("referrals"))

    # time passes: every sent referral's deadline is now behind it (each copy's timer looks every 0.1 s)
    engine = create_engine(stack.databases["referrals"])
    with engine.begin() as db:
        sent = set(db.execute(text("UPDATE referrals SET deadline = now() - interval '1 day' "
                                   "WHERE status = 'sent' AND overdue_at IS NULL RETURNING id")).scalars())
    engine.dispose()
    assert accepted <= sent

    wait_until(lambda: rows(stack.databases["referrals"],
                            "SELECT count(*) FROM referrals WHERE status = 'sent' AND overdue_at IS NULL")[0][0] == 0,
               timeout=30, message="not every referral past its deadline was marked overdue")
    wait_until(lambda: sent <= {e.data["referral_id"] for e in wire.of_type(ReferralOverdue.TYPE)}, timeout=30,
               message="not every overdue referral's referral.overdue was published")
    escalations = Counter(e.data["referral_id"] for e in wire.of_type(ReferralOverdue.TYPE))
    assert [referral_id for referral_id, times in escalations.items() if times != 1] == []
    escalated = sum(metric(stack, process, "pont_referrals_overdue_total") for process in copies("referrals"))
    assert escalated - escalated_before == len(sent)
