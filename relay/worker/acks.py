"""Which outbox messages to ack, and how: one ``multiple`` ack per run of settled tags.

A consume channel numbers its deliveries 1, 2, 3… (delivery tags). The relay settles them out
of order (batches finish when their confirms come), so instead of a ``basic.ack`` frame per
message, :class:`OutboxAcks` keeps the tags in the order they came and, whenever the front of
that order is settled, answers the one tag to ack with ``multiple=True``.

Why that is safe: every tag the channel delivered is recorded (``delivered``) until it is
settled, so the run in front holds nothing unsettled. A nacked tag (handed back with its own
``basic.nack``) is no longer the broker's to ack; the multiple ack names the last *acked* tag of
the run, and covers exactly the acked ones before it. Once the channel is stopping, messages
that arrive are not recorded (they are left to be handed back), so ``drain`` then acks what is
settled one by one instead.
"""

from __future__ import annotations

from collections import deque


class OutboxAcks:
    def __init__(self) -> None:
        self._order: deque[int] = deque()
        self._settled: dict[int, bool] = {}  # tag -> acked (True) or nacked (False)

    def delivered(self, tag: int) -> None:
        """A message came with ``tag`` (tags only grow on one channel)."""
        self._order.append(tag)

    def settle(self, tag: int, acked: bool) -> None:
        """``tag`` is done: to be acked, or already nacked by the caller."""
        self._settled[tag] = acked

    def ack_multiple(self) -> int | None:
        """The tag to ack with ``multiple=True`` now (the front run is forgotten), or None."""
        last_acked = None
        order, settled = self._order, self._settled
        while order and order[0] in settled:
            tag = order.popleft()
            if settled.pop(tag):
                last_acked = tag
        return last_acked

    def drain(self) -> list[int]:
        """Every settled tag still to ack, each on its own (for a stopping channel)."""
        tags = [tag for tag, acked in self._settled.items() if acked]
        self._settled.clear()
        return tags

    @property
    def waiting(self) -> int:
        """Settled tags held back by an unsettled one in front of them."""
        return len(self._settled)
