"""Gathering outbox messages into batches, and handing each to the database thread.

Outbox messages are gathered into batches (``batch_size`` or ``batch_wait_ms``, see
:class:`relay.worker.intake.FlushRules`); each batch is handled by
:class:`relay.worker.transaction.BatchTransaction` in ONE database transaction on
:class:`relay.worker.dbthread.DbThread`, then everything it produced is published at once
(:mod:`.publishing`). Every message received counts towards the bytes held, which may pause
intake (:mod:`.outboxes`).

An urgent lane's message (issue 18) is a batch of its own at once, on the other database
thread, never behind the ordinary batches already taken.
"""

from __future__ import annotations

import functools
import time

import pika.spec
import structlog
from sqlalchemy import Connection

from relay.domain.intake import envelope
from relay.worker.confirms import InFlight
from relay.worker.dbthread import when_connection_released
from relay.worker.intake import Flush, IntakeStep, intake_step
from relay.worker.loopstate import LoopState
from relay.worker.process import Handled, Inbound
from relay.worker.timings import BatchTimes
from relay.worker.transaction import properties_dict
from schemas import topology as t

log = structlog.get_logger()


class Batching(LoopState):
    """Taking outbox messages in, gathering them, handing batches to the database thread."""

    def _on_message(
        self,
        queue: str,
        owner: str,
        method: pika.spec.Basic.Deliver,
        props: pika.spec.BasicProperties,
        body: bytes,
    ) -> None:
        if self._stopping or self._closing:
            return  # left unacked: handed back when the channel closes
        self._acks.delivered(method.delivery_tag)
        inbound = Inbound(
            tag=method.delivery_tag,
            queue=queue,
            envelope=envelope(owner, props.message_id, props.user_id, props.type, body),
            properties=functools.partial(properties_dict, props),
            received=time.monotonic(),
        )
        if queue.endswith(t.URGENT_SUFFIX):
            # Urgent lane (issue 18): a batch of its own at once, on the other database thread,
            # never behind the ordinary batches already taken (up to the prefetch).
            assert self._db_queued is not None
            self._jobs += 1
            urgent = [inbound]
            self._db_queued.submit(lambda c: self._transaction.run(c, urgent), self._after_urgent)
        else:
            self._pending.append(inbound)
            self._pending_bytes += len(body)
        self._held_bytes += len(body)
        self._held_count += 1
        self._held_by_queue[queue] += 1
        self._held_peak = max(self._held_peak, self._held_bytes)
        step = intake_step(
            held_bytes=self._held_bytes,
            held_count=self._held_count,
            busiest=self._held_by_queue[queue],
            paused=self._paused,
            prefetch=self._prefetch,
            max_prefetch=self.settings.prefetch,
            intake_max_bytes=self.settings.intake_max_bytes,
            consumers=len(self._owned),
        )
        if step is IntakeStep.PAUSE:
            self._pause_intake()
        elif step is IntakeStep.REGROW:
            # A lowered prefetch full of small messages: consumers with a larger one (each
            # restart at least doubles it).
            self._pause_intake()
            self._resume_intake()
        if self._flush_rules.full(len(self._pending), self._pending_bytes):
            self._flush()
        elif self._flush_timer is None:
            assert self._conn is not None
            # busy = storing a batch; recording confirms (`_jobs`) runs on the other database
            # thread and its own connection, and is no reason for this one to wait
            wait = self._flush_rules.wait_seconds(db_busy=bool(self._batches))
            self._flush_timer = self._conn.ioloop.call_later(wait, self._on_flush_timer)

    def _on_flush_timer(self) -> None:
        self._flush_timer = None
        self._flush(wait_for_db=True)

    def _flush(self, *, wait_for_db: bool = False) -> None:
        if self._flush_timer is not None and self._conn is not None:
            self._conn.ioloop.remove_timeout(self._flush_timer)
            self._flush_timer = None
        decision = self._flush_rules.decide(
            wait_for_db=wait_for_db,
            db_batches=self._batches,
            copy_bytes=self._copy_bytes + self._unsent_bytes,
            copies_in_flight=bool(self._inflight),
            stopping=self._stopping,
        )
        if decision is not Flush.GO:
            return  # it goes when the database answers, or when the copies are confirmed
        size = self.settings.batch_size
        batch, self._pending = self._pending[:size], self._pending[size:]
        self._pending_bytes = sum(len(m.envelope.body) for m in self._pending)
        if not batch or self._closing:
            return
        assert self._db is not None
        self._jobs += 1
        self._batches += 1
        times = BatchTimes(arrived=batch[0].received, flushed=time.monotonic())
        self._db.submit(
            functools.partial(self._store_batch, batch, times),
            functools.partial(self._after_process, times=times),
        )

    def _store_batch(
        self, batch: list[Inbound], times: BatchTimes, conn: Connection
    ) -> list[Handled]:
        """On the database thread: the batch's transaction, timed (``stored`` once committed:
        the database thread commits after the work returns, then gives the connection back)."""
        times.began = time.monotonic()
        handled = self._transaction.run(conn, batch)

        def committed() -> None:
            times.stored = time.monotonic()

        if not when_connection_released(committed):
            committed()
        return handled

    def _after_process(self, handled: list[Handled], times: BatchTimes) -> None:
        self._jobs -= 1
        self._batches -= 1
        if self._closing:
            return
        if self._pending and not self._batches:
            self._flush()  # what gathered meanwhile: the database is free again
        times.published = time.monotonic()
        self._send(InFlight(handled=handled, times=times))
        log.debug(
            "relay.batch",
            size=sum(1 for h in handled if h.inbound is not None),
            publishes=sum(len(h.publishes) for h in handled),
        )

    def _after_urgent(self, handled: list[Handled]) -> None:
        self._jobs -= 1
        if not self._closing:
            self._send(InFlight(handled=handled), at_once=True)
