"""AckWindow: which acknowledgements a consumer sends for the deliveries it has finished."""
from pont_shared.messaging.acks import AckWindow


def window_with(tags, waiting_limit=100) -> AckWindow:
    window = AckWindow(waiting_limit=waiting_limit)
    for tag in tags:
        window.delivered(tag)
    return window


def test_a_finished_run_from_the_oldest_delivery_is_one_multiple_ack():
    window = window_with(range(1, 201))
    assert window.finished(range(1, 201)) == [(200, True)]
    assert len(window) == 0


def test_deliveries_finished_behind_an_unfinished_one_wait_for_it():
    window = window_with(range(1, 11))
    assert window.finished([2, 3, 4]) == []  # 1 is still being handled: acking 4 would settle it
    assert window.finished([1]) == [(4, True)]
    assert len(window) == 6


def test_batches_finishing_out_of_order_are_settled_together():
    window = window_with(range(1, 401), waiting_limit=300)  # prefetch 600
    assert window.finished(range(201, 401)) == []
    assert window.finished(range(1, 201)) == [(400, True)]


def test_too_many_waiting_behind_a_slow_delivery_are_acked_one_by_one():
    window = window_with(range(1, 11), waiting_limit=4)
    assert window.finished([2, 3, 4]) == []
    assert window.finished([5]) == [(2, False), (3, False), (4, False), (5, False)]
    assert len(window) == 6  # 1 and 6..10


def test_a_multiple_ack_never_names_a_delivery_already_acked_on_its_own():
    window = window_with(range(1, 11), waiting_limit=2)
    assert window.finished([2, 3]) == [(2, False), (3, False)]
    # 1 finishes: 1..3 are settled, but the broker holds only 1 now, so the ack names 1
    assert window.finished([1]) == [(1, True)]
    assert window.finished([4]) == [(4, True)]
    assert len(window) == 6


def test_a_run_ending_in_deliveries_acked_alone_names_the_last_one_the_broker_holds():
    window = window_with(range(1, 6), waiting_limit=2)
    assert window.finished([3, 4]) == [(3, False), (4, False)]
    assert window.finished([1, 2]) == [(2, True)]  # 3 and 4 are gone from the broker already
    assert window.finished([5]) == [(5, True)]
    assert len(window) == 0


def test_a_requeued_delivery_is_never_acknowledged_and_does_not_hold_up_the_rest():
    window = window_with(range(1, 4))
    window.requeued(1)
    assert window.finished([2, 3]) == [(3, True)]  # 1 is no longer the broker's to settle by ack
    assert len(window) == 0


def test_every_delivery_is_acked_once_and_only_after_it_finished():
    import random

    rng = random.Random(7)
    tags = list(range(1, 501))
    window = window_with(tags, waiting_limit=20)
    order = tags[:]
    rng.shuffle(order)
    finished: set[int] = set()
    acked: set[int] = set()  # what the broker no longer holds
    for start in range(0, len(order), 7):
        chunk = order[start:start + 7]
        finished.update(chunk)
        for tag, multiple in window.finished(chunk):
            assert tag not in acked, "the broker refuses an ack for a tag it no longer holds"
            settled = set(range(1, tag + 1)) - acked if multiple else {tag}
            assert settled <= finished, "an ack settled a delivery that was still being handled"
            acked |= settled
    assert acked == set(tags)
    assert len(window) == 0
