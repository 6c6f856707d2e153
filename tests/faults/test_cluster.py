"""Pont on a 3-node RabbitMQ cluster (`make test-cluster`; also in `make test`).

Three nodes of the suite's own (distinct node names, ports and data folders) are clustered, and
the whole stack runs on them as `make start` runs it, with `AMQP_URI` listing the three. Every
queue that holds work is a quorum queue with a member on each node. Mid-stream, with the
fault suite's eight clients raising referrals, the node that leads Pont's queues is stopped: its
queues elect leaders on the other nodes and every connection to it fails over to the next host.
Afterwards nothing is lost or doubled, nothing is dead-lettered, no process restarted, and the
longest pause in accepted referrals (the election and the failover together) is printed.
"""
from __future__ import annotations

import json
import time
from collections import Counter

import pytest

from .conftest import running_stack
from .load import (
    RECOVERY_SECONDS,
    Clients,
    approve_agreement,
    assert_each_accepted_referral_exists_exactly_once,
    wait_until_recovered,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(fault_cluster, fault_postgres):
    with running_stack(fault_cluster, fault_postgres) as stack:
        approve_agreement(stack)
        yield stack


def quorum_queues(stack) -> dict[str, dict]:
    listed = stack.broker.ctl("list_queues", "-p", stack.vhost, "name", "type", "leader", "members",
                              "--formatter", "json").stdout
    return {row["name"]: row for row in json.loads(listed or "[]") if row["type"] == "quorum"}


def test_stopping_the_node_that_leads_ponts_queues_loses_nothing_and_pauses_work_only_for_the_election(stack):
    cluster = stack.broker
    queues = quorum_queues(stack)
    nodes = [node.node for node in cluster.nodes]
    assert queues and all(sorted(row["members"]) == sorted(nodes) for row in queues.values())
    leader = Counter(row["leader"] for row in queues.values()).most_common(1)[0][0]
    index = nodes.index(leader)

    with Clients(stack) as clients:
        clients.wait_for(20, timeout=60)
        processes = {name: stack.pid(name) for name in stack.ports}

        stopped_at = time.monotonic()
        cluster.stop_node(index)

        took = wait_until_recovered(stack, stopped_at)
        clients.wait_for(20, timeout=RECOVERY_SECONDS)
        pause = clients.longest_pause(stopped_at)
        led_elsewhere = quorum_queues(stack)
    try:
        print(f"node {leader} (leading {sum(r['leader'] == leader for r in queues.values())} of {len(queues)} "
              f"queues) stopped → longest pause in accepted referrals {pause:.1f} s; every service ready "
              f"in {took:.1f} s; {len(clients.accepted)} referrals accepted")
        assert all(row["leader"] != leader for row in led_elsewhere.values())
        restarted = sorted(name for name, pid in processes.items() if stack.pid(name) != pid)
        assert restarted == [], {name: stack.log_tail(name, 40) for name in restarted}
        assert_each_accepted_referral_exists_exactly_once(stack, clients)
        assert pause < RECOVERY_SECONDS
    finally:
        cluster.start_node(index)
