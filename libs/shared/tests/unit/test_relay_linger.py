"""The relay's linger: it waits for a fuller batch only while commits are still arriving, and not for ever."""
from __future__ import annotations

import threading
import time

from pont_shared.outbox import OutboxRelay


def relay(linger: float) -> OutboxRelay:
    return OutboxRelay(None, None, "amqp://unused", "test", batch_size=100, poll_seconds=5.0, linger_seconds=linger)


def waited(r: OutboxRelay) -> float:
    started = time.monotonic()
    r._wait_for_events()
    return time.monotonic() - started


def test_a_whole_batch_committed_is_published_without_lingering():
    r = relay(linger=2.0)
    r.wake(100)
    assert waited(r) < 1.0


def test_a_lone_event_waits_at_most_the_linger():
    r = relay(linger=0.3)
    r.wake(1)
    assert 0.3 <= waited(r) < 2.0


def test_commits_that_fill_the_batch_end_the_linger():
    r = relay(linger=5.0)
    r.wake(1)
    filler = threading.Timer(0.2, r.wake, args=(99,))
    filler.start()
    try:
        assert 0.2 <= waited(r) < 2.5
    finally:
        filler.cancel()


def test_a_poll_with_no_commit_does_not_linger():
    r = OutboxRelay(None, None, "amqp://unused", "test", batch_size=100, poll_seconds=0.1, linger_seconds=5.0)
    assert waited(r) < 2.0


def test_stopping_ends_the_linger():
    r = relay(linger=5.0)
    r.wake(1)
    stopper = threading.Timer(0.2, r.stop)
    stopper.start()
    assert waited(r) < 2.5
