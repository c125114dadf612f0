"""Publisher confirms and what each one settles: pure bookkeeping, no pika, no database.

A confirm-mode channel numbers its publishes 1, 2, 3… and answers each with ``basic.ack`` or
``basic.nack``, possibly for many at once (``multiple``). :class:`Confirms` maps those answers
back to what was published. :func:`outcome` decides what a confirm means for one publish (a
``basic.return`` comes before the confirm of the same publish), and :meth:`InFlight.settle`
records it on the batch it belongs to; when a batch's last publish is settled, the loop
records it in the database and only then acks its outbox messages (:func:`verdict`).
"""

from __future__ import annotations

import datetime as dt
import enum
from collections import deque
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from relay.domain.outgoing import Outgoing
from relay.worker.process import Handled, Publish
from relay.worker.timings import BatchTimes

T = TypeVar("T")

#: Why a nacked publish was not queued (stored in ``deliveries.last_error`` / ``bounces``).
NACKED_REASON = "nacked by the broker"


class Confirms(Generic[T]):
    """Publish numbers awaiting their confirm, each with what it published."""

    def __init__(self) -> None:
        self._seq = 0
        self._by_seq: dict[int, T] = {}
        self._order: deque[int] = deque()

    def published(self, item: T) -> int:
        """Record the next publish on the channel; returns its number."""
        self._seq += 1
        self._by_seq[self._seq] = item
        self._order.append(self._seq)
        return self._seq

    def confirmed(self, tag: int, *, multiple: bool) -> list[T]:
        """What a ``basic.ack``/``basic.nack`` with ``delivery_tag=tag`` settles, in order."""
        settled: list[T] = []
        if multiple:
            while self._order and self._order[0] <= tag:
                item = self._by_seq.pop(self._order.popleft(), None)
                if item is not None:
                    settled.append(item)
        else:
            item = self._by_seq.pop(tag, None)
            if item is not None:
                settled.append(item)
        # Single confirms leave settled numbers at the front of the order; drop them.
        while self._order and self._order[0] not in self._by_seq:
            self._order.popleft()
        return settled

    def __len__(self) -> int:
        """Publishes still awaiting their confirm."""
        return len(self._by_seq)


class Outcome(enum.Enum):
    """What became of one publish."""

    CONFIRMED = "confirmed"  # taken by its inbox
    UNROUTABLE = "unroutable"  # returned: no inbox took it
    NACKED = "nacked"  # the broker refused it


def outcome(acked: bool, returned: str | None) -> Outcome:
    """A confirm's meaning for one publish; ``returned`` is the reason of its ``basic.return``
    if one came (RabbitMQ sends it before the confirm, which is then an ack)."""
    if returned is not None:
        return Outcome.UNROUTABLE
    return Outcome.CONFIRMED if acked else Outcome.NACKED


@dataclass
class InFlight:
    """A handled batch whose publishes await their confirms."""

    handled: list[Handled]
    outstanding: int = 0
    #: when its messages were handed to the broker (the ``queued`` events' time)
    published_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    confirmed: list[int] = field(default_factory=list)  # delivery ids
    failures: dict[int, str] = field(default_factory=dict)  # delivery id -> why not queued
    #: deliveries the broker returned (no inbox): handed to the retry schedule
    unroutable: set[int] = field(default_factory=set)
    #: statuses and receipts the broker returned or nacked, with why: kept and retried
    bounced: list[tuple[Outgoing, str]] = field(default_factory=list)
    #: where its time went (the ``relay.flight`` debug line); None for what the sweep resends
    times: BatchTimes | None = None

    def settle(self, pub: Publish, result: Outcome, reason: str | None = None) -> bool:
        """Record what became of ``pub``; True when it was the batch's last outstanding one.

        A copy (with a delivery row) that is confirmed becomes ``queued``; a returned one goes
        to the retry schedule; a nacked one stays ``pending`` with why, for the sweep. A status
        forward or receipt (no delivery row) that is returned or nacked is kept in
        ``bounces`` and retried by the schedule: the outbox message is never handed back for it
        (a requeue is a redelivery a quorum queue counts towards its limit; issue 12 items 6
        and 9)."""
        did = pub.delivery_id
        if result is Outcome.CONFIRMED:
            if did is not None:
                self.confirmed.append(did)
        else:
            why = reason if result is Outcome.UNROUTABLE and reason else NACKED_REASON
            if did is None:
                self.bounced.append((pub.outgoing, why))
            else:
                self.failures[did] = why
                if result is Outcome.UNROUTABLE:
                    self.unroutable.add(did)
        self.outstanding -= 1
        return self.outstanding == 0


class Verdict(enum.Enum):
    """What to answer the broker about one outbox message."""

    ACK = "ack"
    #: leave it unacked: the broker hands it back when the channel closes
    HOLD = "hold"


def verdict(*, recorded: bool, closing: bool) -> Verdict:
    """The one decision about an outbox message: acked once everything it produced is
    confirmed and recorded in the database; held (handed back by the broker, done again by
    the next connection) when the connection is going away before that. An outbox message is
    never nacked: what could not be published is kept in the database and retried from
    there, so handing it back would only run it twice."""
    return Verdict.ACK if recorded and not closing else Verdict.HOLD
