"""How much the relay takes in, and when what it gathered goes as a batch: pure rules.

Intake is bounded by bytes: above ``intake_max_bytes`` of outbox messages received and not yet
acked, the consumers are cancelled until half of it is left (:func:`intake_step`,
:func:`may_resume`); the consumers started then get a prefetch sized so that messages of the
size held fill at most half of it between them (:func:`paused_prefetch`; the prefetch is per
consumer, one per outbox the worker consumes).

A partial batch (cut by ``batch_wait_ms``) waits while the database is still on the previous
batch and goes as soon as that one is answered, so a steady trickle makes fewer, bigger
transactions instead of a commit per few documents; a full batch (``batch_size``, or a quarter
of ``intake_max_bytes``) goes at once. An idle database takes what one turn of the ioloop
brought at once. While the copies published and not yet confirmed hold ``intake_max_bytes``
(a fan-out batch is the body times its recipients), the next batch waits for their confirms
(:class:`FlushRules`).

No pika, no database: :mod:`.outboxes` and :mod:`.batching` apply these on the ioloop.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from relay.config import Settings

#: A batch is also cut when its bodies add up to ``intake_max_bytes`` divided by this (big
#: attachments), so one batch is stored while the next gathers, and the copies a batch costs
#: while it is stored (psycopg's parameters, libpq's buffer) stay small: 1MiB-attachment PSS
#: 291-299 MB with a half, 259-272 MB with a quarter.
BATCH_BYTES_SHARE = 4
#: Copies published and not yet confirmed may hold this many times ``intake_max_bytes``
#: before the next batch waits for their confirms.
COPY_BYTES_FACTOR = 1


class Flush(enum.Enum):
    """What to do with the messages gathered, when asked to send them."""

    GO = "go"
    #: the database is still on the previous batch: keep gathering, go when it is answered
    WAIT_FOR_DB = "wait_for_db"
    #: the copies published and not yet confirmed hold too many bytes: go when they are
    WAIT_FOR_CONFIRMS = "wait_for_confirms"


@dataclass(frozen=True)
class FlushRules:
    """When gathered outbox messages go to the database as a batch (pure)."""

    batch_size: int
    batch_wait_ms: int
    intake_max_bytes: int

    @classmethod
    def of(cls, settings: Settings) -> FlushRules:
        return cls(settings.batch_size, settings.batch_wait_ms, settings.intake_max_bytes)

    def full(self, count: int, nbytes: int) -> bool:
        """A batch of ``count`` messages holding ``nbytes`` goes at once."""
        return count >= self.batch_size or nbytes >= self.intake_max_bytes // BATCH_BYTES_SHARE

    def wait_seconds(self, *, db_busy: bool) -> float:
        """How long a partial batch gathers: an idle database takes what this turn of the
        ioloop brought at once (nothing to wait for); a busy one gets a batch gathered for up
        to ``batch_wait_ms``."""
        return self.batch_wait_ms / 1000.0 if db_busy else 0.0

    def decide(
        self,
        *,
        wait_for_db: bool,
        db_batches: int,
        copy_bytes: int,
        copies_in_flight: bool,
        stopping: bool,
    ) -> Flush:
        """Whether what was gathered goes now. ``wait_for_db``: asked by the ``batch_wait_ms``
        timer (a full batch or a freed database does not wait); ``db_batches``: batches the
        database has not answered yet; ``copy_bytes``: what the copies published and not yet
        confirmed hold, with those still waiting to be published (``copies_in_flight``: some
        are). A stopping relay sends what it has."""
        if stopping:
            return Flush.GO
        if wait_for_db and db_batches:
            # one bigger transaction instead of many small ones, so a steady trickle does not
            # pay a commit per few documents
            return Flush.WAIT_FOR_DB
        if copy_bytes >= COPY_BYTES_FACTOR * self.intake_max_bytes and copies_in_flight:
            # a fan-out batch is the body times its recipients
            return Flush.WAIT_FOR_CONFIRMS
        return Flush.GO


class IntakeStep(enum.Enum):
    """What one more outbox message held asks of the consumers."""

    KEEP = "keep"
    #: too many bytes held: cancel the consumers until half of ``intake_max_bytes`` is left
    PAUSE = "pause"
    #: a lowered prefetch full of small messages: restart the consumers with a larger one
    REGROW = "regrow"


#: The prefetch outbox consumers start with, before the relay knows the size of what they hold.
#: RabbitMQ bounds what it pushes to a consumer by count only, and what it has pushed still
#: arrives after the consumer is cancelled: started with the full prefetch (250) on a backlog of
#: 1.4 MB documents, a worker took in 300 MB before its intake bound could stop it (the bench's
#: 1MiB-attachment relay peaked at 493 MB once). The first outbox whose consumer holds its
#: prefetch regrows it to what the sizes held allow (:func:`intake_step`): small documents go
#: to the full prefetch at once.
START_PREFETCH = 1


def start_prefetch(max_prefetch: int) -> int:
    """The prefetch of the consumers a worker starts with (:data:`START_PREFETCH`)."""
    return min(max_prefetch, START_PREFETCH)


def intake_step(
    *,
    held_bytes: int,
    held_count: int,
    busiest: int,
    paused: bool,
    prefetch: int,
    max_prefetch: int,
    intake_max_bytes: int,
    consumers: int = 1,
) -> IntakeStep:
    """After a message is received: pause, restart with a larger prefetch, or keep going.
    ``busiest``: the messages held from the outbox this one came from (a consumer holding its
    prefetch waits for acks however small its messages are); ``consumers``: the outbox
    consumers the prefetch applies to, each (``basic.qos`` is per consumer)."""
    if paused:
        return IntakeStep.KEEP
    if held_bytes > intake_max_bytes:
        return IntakeStep.PAUSE
    if prefetch < max_prefetch and busiest >= prefetch and held_bytes <= intake_max_bytes // 4:
        grown = paused_prefetch(
            held_bytes=held_bytes,
            held_count=held_count,
            max_prefetch=max_prefetch,
            intake_max_bytes=intake_max_bytes,
            consumers=consumers,
        )
        # at least doubled (or to the maximum): a restart cancels and starts every consumer, so
        # sizes that drift do not restart them for one message more each time, and large
        # messages keep their small prefetch without restarting for nothing
        if grown >= min(max_prefetch, 2 * prefetch):
            return IntakeStep.REGROW
    return IntakeStep.KEEP


def paused_prefetch(
    *,
    held_bytes: int,
    held_count: int,
    max_prefetch: int,
    intake_max_bytes: int,
    consumers: int = 1,
) -> int:
    """The prefetch for the consumers started after a pause.

    RabbitMQ bounds unacked messages by count only, and a cancelled consumer's unacked
    messages do not count against its successor's prefetch: at each resume the broker could
    push a whole prefetch of large messages (250 chunks of 1 MiB: 333 MB held by a relay sending
    a 1 GB attachment). The ``consumers`` started next (one per outbox the worker consumes; the
    prefetch is per consumer) get a prefetch sized so that messages of the size now held fill at
    most half of intake_max_bytes between them."""
    average = max(1, held_bytes // max(1, held_count))
    return max(1, min(max_prefetch, intake_max_bytes // 2 // average // max(1, consumers)))


def may_resume(*, paused: bool, held_bytes: int, intake_max_bytes: int) -> bool:
    """After outbox messages are acked: whether paused consumers start again."""
    return paused and held_bytes <= intake_max_bytes // 2
