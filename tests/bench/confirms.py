"""Bookkeeping of streamed publisher confirms (pure): which publishes a Basic.Ack/Nack covers.

RabbitMQ numbers publishes on a confirm-mode channel 1, 2, 3…; one ack may cover every
outstanding number up to its tag (``multiple``), and tags never repeat.
"""

from __future__ import annotations

from collections import deque


class ConfirmTracker:
    """Outstanding publish sequence numbers of one channel."""

    def __init__(self) -> None:
        self.next_seq = 1
        self._order: deque[int] = deque()
        self._open: set[int] = set()

    def published(self) -> int:
        """Record one publish; returns its sequence number."""
        seq = self.next_seq
        self.next_seq += 1
        self._order.append(seq)
        self._open.add(seq)
        return seq

    @property
    def outstanding(self) -> int:
        return len(self._open)

    def settle(self, tag: int, multiple: bool) -> list[int]:
        """The sequence numbers a confirm with ``tag``/``multiple`` settles, oldest first."""
        if not multiple:
            if tag in self._open:
                self._open.remove(tag)
                return [tag]
            return []
        settled = []
        order = self._order
        while order and order[0] <= tag:
            seq = order.popleft()
            if seq in self._open:
                self._open.remove(seq)
                settled.append(seq)
        return settled
