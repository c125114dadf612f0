"""Which outboxes the relay consumes, and how much it takes from them at once.

The directory is polled every ``agency_poll_seconds`` (on the database thread, never on the
ioloop): each active connected agency this worker's partition owns is consumed, two consumers
per agency (its urgent lane first, with a prefetch of its own: issue 18). Each outbox is
declared before it is consumed, one at a time on a channel of its own: declaring is idempotent
and repairs an outbox the broker lost, and an outbox that cannot be declared (declared elsewhere
with other arguments: 406) is skipped and tried again at the next directory poll, so the other
outboxes go on. A consumer the broker cancels (queue deleted) is forgotten and picked up again
when the queue is back.

Intake is bounded by bytes (the rules: :mod:`relay.worker.intake`): too many bytes held cancels
the consumers (``_pause_intake``) until half of it is left (``_resume_intake``).
"""

from __future__ import annotations

from typing import Any

import pika.channel
import pika.spec
import structlog

from relay.broker.topology import QUORUM
from relay.metrics.hot import intake_paused
from relay.worker import store
from relay.worker.amqp import unused_consumer_callback
from relay.worker.intake import paused_prefetch
from relay.worker.loopstate import LoopState
from schemas import topology as t

log = structlog.get_logger()


class Outboxes(LoopState):
    """The directory poll, declaring and consuming outboxes, cancelling, pausing intake."""

    def _poll_directory(self) -> None:
        """Ask the database thread for the directory: the ioloop never waits for PostgreSQL
        (heartbeats and confirms go on while it is slow or down)."""
        if self._stopping or self._closing:
            return
        assert self._db_queued is not None
        owns = self.partition.owns
        self._db_queued.submit(
            lambda conn: {c for c in store.active_connected_agencies(conn) if owns(c)},
            self._on_directory,
        )

    def _on_directory(self, active: set[str]) -> None:
        if self._stopping or self._closing:
            return
        ch = self._consume
        assert ch is not None
        for code in sorted(self._owned - active):
            log.info("relay.outbox_released", agency=code)
            self._announced.discard(code)
        self._owned = active
        for code in sorted(self._consumers.keys() - active):
            self._cancel_consumer(ch, self._consumers.pop(code))
        if not self._paused:
            for code in sorted(active - self._consumers.keys()):
                self._start_consuming(ch, code)
        self._later("poll", self.settings.agency_poll_seconds, self._poll_directory)

    def _pause_intake(self) -> None:
        """Too many bytes held: stop taking outbox messages (cancelled consumers keep what they
        were given; it is handled and acked as usual) until ``_resume_intake``."""
        self._paused = True
        intake_paused(True)
        self._prefetch = paused_prefetch(
            held_bytes=self._held_bytes,
            held_count=self._held_count,
            max_prefetch=self.settings.prefetch,
            intake_max_bytes=self.settings.intake_max_bytes,
            consumers=len(self._owned),
        )
        ch = self._consume
        if ch is not None and ch.is_open:
            for tag in self._consumers.values():
                self._cancel_consumer(ch, tag)
        self._consumers.clear()
        log.debug(
            "relay.intake_paused", held_bytes=self._held_bytes, held_peak_bytes=self._held_peak
        )
        self._held_peak = self._held_bytes

    def _resume_intake(self) -> None:
        self._paused = False
        intake_paused(False)
        ch = self._consume
        if ch is None or not ch.is_open or self._stopping or self._closing:
            return
        log.debug(
            "relay.intake_resumed",
            held_bytes=self._held_bytes,
            held_peak_bytes=self._held_peak,  # since the pause: what came after the cancel
            prefetch=self._prefetch,
        )
        self._held_peak = self._held_bytes
        ch.basic_qos(prefetch_count=self._prefetch)  # for the consumers started below
        for code in sorted(self._owned - self._consumers.keys()):
            self._start_consuming(ch, code, resuming=True)

    def _start_consuming(
        self, ch: pika.channel.Channel, code: str, *, resuming: bool = False
    ) -> None:
        queue = t.outbox_queue(code)
        # A fresh tag each time: a resumed agency must not collide with its cancelled consumer.
        self._consumer_serial += 1
        tag = f"lienthong-relay.{code}.{self._consumer_serial}"
        self._consumers[code] = tag

        def consume(_frame: Any) -> None:
            if self._consumers.get(code) == tag and not self._stopping:
                # Urgent lane first, with a prefetch of its own (basic.qos is per consumer):
                # an ordinary backlog never holds its deliveries back (issue 18).
                urgent = t.outbox_queue(code, urgent=True)
                self._handlers[tag + t.URGENT_SUFFIX] = (urgent, code)
                ch.basic_consume(
                    urgent, unused_consumer_callback, consumer_tag=tag + t.URGENT_SUFFIX
                )
                self._handlers[tag] = (queue, code)
                ch.basic_consume(queue, unused_consumer_callback, consumer_tag=tag)
                # said when an outbox is first consumed, or again after the broker cancelled
                # or the directory released it; resuming intake (or regrowing the prefetch,
                # which may come before a first declaration is answered) is debug
                if code in self._announced:
                    log.debug("relay.outbox_consumed", agency=code, queue=queue)
                else:
                    self._announced.add(code)
                    log.info("relay.outbox_consumed", agency=code, queue=queue)

        if resuming:
            consume(None)
            return
        self._to_declare.append((code, tag, consume))
        self._declare_next()

    def _declare_next(self) -> None:
        """Declare the next outbox waiting (one at a time, so a refusal names its queue).

        Declaring is idempotent and repairs an outbox the broker lost (same arguments as
        provisioning, so RabbitMQ sees an equivalent declaration)."""
        ch = self._declare
        if self._declaring is not None or ch is None or not ch.is_open or self._closing:
            return
        while self._to_declare:
            code, tag, consume = self._to_declare.popleft()
            if self._consumers.get(code) == tag:
                break
        else:
            return
        self._declaring = (code, tag)
        queue = t.outbox_queue(code)

        def declared(_frame: Any) -> None:
            self._declaring = None
            if code in self._skipped:
                self._skipped.discard(code)
                log.info("relay.outbox_recovered", agency=code, queue=queue)
            consume(None)
            self._declare_next()

        own = t.submit_exchange(code)

        urgent, own_urgent = t.outbox_queue(code, urgent=True), t.submit_exchange(code, urgent=True)

        def declare_urgent(_frame: Any) -> None:  # the urgent lane's outbox and exchange too
            ch.queue_declare(
                urgent,
                durable=True,
                arguments=dict(QUORUM),
                callback=lambda _f: ch.exchange_declare(
                    own_urgent,
                    exchange_type="fanout",
                    durable=True,
                    callback=lambda _f: ch.queue_bind(urgent, own_urgent, "", callback=declared),
                ),
            )

        def bind_shared(_frame: Any) -> None:
            ch.queue_bind(
                queue,
                t.SUBMIT_EXCHANGE,
                routing_key=t.submit_routing_key(code),
                callback=declare_urgent,
            )

        def bind_own(_frame: Any) -> None:
            ch.queue_bind(queue, own, routing_key="", callback=bind_shared)

        # The agency's own fanout exchange and its one binding come back with the queue, so an
        # outbox the broker lost is writable again without waiting for `relay setup`.
        ch.queue_declare(
            queue,
            durable=True,
            arguments=dict(QUORUM),
            callback=lambda _f: ch.exchange_declare(
                own, exchange_type="fanout", durable=True, callback=bind_own
            ),
        )

    def _on_declare_closed(self, ch: pika.channel.Channel, reason: BaseException) -> None:
        """The broker refused a declaration: skip that outbox until the next directory poll,
        and go on with the others on a new channel."""
        if self._closing or self._conn is None or not self._conn.is_open:
            return
        failed, self._declaring = self._declaring, None
        if failed is not None:
            code, tag = failed
            if self._consumers.get(code) == tag:
                del self._consumers[code]  # not consumed: the next poll tries it again
            if code not in self._skipped:
                self._skipped.add(code)
                log.error(
                    "relay.outbox_skipped",
                    agency=code,
                    queue=t.outbox_queue(code),
                    reason=str(reason),
                    retry_in=self.settings.agency_poll_seconds,
                )
            else:
                log.debug("relay.outbox_skipped", agency=code, reason=str(reason))
        self._conn.channel(on_open_callback=self._on_declare_channel)

    def _on_broker_cancel(self, frame: Any) -> None:
        """``basic.cancel`` from the broker: the outbox was deleted. Forget the consumer; the
        next directory poll declares the outbox again and consumes it."""
        tag = frame.method.consumer_tag
        where = self._handlers.pop(tag, None)
        if where is None:
            return
        queue, code = where
        base = tag.removesuffix(t.URGENT_SUFFIX)
        if self._consumers.get(code) == base:
            del self._consumers[code]
            # An agency's two lanes come back together (declared and consumed again).
            other = base + t.URGENT_SUFFIX if tag == base else base
            if other in self._handlers and self._consume is not None and self._consume.is_open:
                self._consume.basic_cancel(
                    other, callback=lambda _frame: self._handlers.pop(other, None)
                )
        self._announced.discard(code)  # consumed again: said again
        log.warning("relay.outbox_cancelled", agency=code, queue=queue)

    def _cancel_consumer(self, ch: pika.channel.Channel, tag: str) -> None:
        """Cancel one consumer; what the broker sent it before the cancel took effect is
        still handled (see ``_dispatch_delivery``)."""
        # pika fires a basic_cancel callback on the channel's *first* CancelOk, whichever
        # consumer it is for: with several consumers cancelled at once (an intake pause), the
        # others' handlers went before their last deliveries came. Only this consumer's
        # CancelOk (matched on its tag) ends its handler. An agency's two outboxes (the urgent
        # lane's consumer tag has the urgent suffix) go together.
        for lane in (tag + t.URGENT_SUFFIX, tag):
            ch.callbacks.add(
                ch.channel_number,
                pika.spec.Basic.CancelOk,
                lambda _frame, lane=lane: self._handlers.pop(lane, None),
                arguments={"consumer_tag": lane},
            )
            ch.basic_cancel(lane, callback=lambda _frame: None)

    def _dispatch_delivery(
        self, method: pika.spec.Basic.Deliver, props: pika.spec.BasicProperties, body: bytes
    ) -> None:
        """Every delivery of the consume channel (:func:`relay.worker.amqp.take_deliveries`),
        including one for a consumer being cancelled: each outbox stays in order."""
        where = self._handlers.get(method.consumer_tag)
        if where is None:  # cannot happen: a handler lives until its CancelOk
            log.error("relay.unexpected_delivery", consumer_tag=method.consumer_tag)
            return
        self._on_message(where[0], where[1], method, props, body)
