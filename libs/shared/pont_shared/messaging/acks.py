"""Acknowledging many deliveries of one channel in few frames.

A consumer that acks every message costs the broker about as much as the publish did.
AMQP lets one `basic.ack(tag, multiple=True)` settle every delivery up to `tag`; that is
safe only once every one of them is finished, whoever handled it. `AckWindow` keeps the
channel's deliveries in order and says which frames to send:

- when the oldest unfinished delivery finishes, one multiple ack settles it and every
  finished delivery after it;
- a finished delivery stuck behind a slow one waits, but once `waiting_limit` are waiting
  (they hold prefetch slots) each is acked on its own, so one slow handler never stalls
  the consumer. With half the prefetch count as the limit, at least half the window is
  always free for work.

Framework-free; `consumer.EventQueueConsumer` drives it for the `@handles` entrypoints.
"""
from __future__ import annotations

from collections import deque


class AckWindow:
    """The deliveries of one channel, in delivery-tag order, until they are acked."""

    def __init__(self, waiting_limit: int):
        self.waiting_limit = max(1, waiting_limit)
        self._unsettled: deque[int] = deque()  # delivered, not yet covered by a multiple ack
        self._finished: set[int] = set()       # handled, not yet acked
        self._settled_alone: set[int] = set()  # acked or requeued on their own, still in _unsettled

    def delivered(self, tag: int) -> None:
        self._unsettled.append(tag)

    def requeued(self, tag: int) -> None:
        """A delivery given back to the broker on its own (`basic.reject`): never to be acked."""
        self._settled_alone.add(tag)

    def finished(self, tags) -> list[tuple[int, bool]]:
        """Record handled deliveries; return the `(delivery_tag, multiple)` acks to send now."""
        self._finished.update(tags)
        acks: list[tuple[int, bool]] = []
        settled_upto = None
        while self._unsettled and (self._unsettled[0] in self._finished or self._unsettled[0] in self._settled_alone):
            tag = self._unsettled.popleft()
            if tag in self._finished:
                self._finished.discard(tag)
                settled_upto = tag  # the broker still holds it: a valid tag for a multiple ack
            else:
                self._settled_alone.discard(tag)
        if settled_upto is not None:
            acks.append((settled_upto, True))
        if len(self._finished) >= self.waiting_limit:
            for tag in sorted(self._finished):
                acks.append((tag, False))
            self._settled_alone |= self._finished
            self._finished = set()
        return acks

    def __len__(self) -> int:
        """Deliveries not yet settled (finished or not)."""
        return len(self._unsettled) - len(self._settled_alone)
