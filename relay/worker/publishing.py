"""Publishing what a batch produced, its confirms, and only then acking its outbox messages.

Everything a batch produced is published at once on the confirm-mode channel: many publishes
await their confirms together (``multiple=True`` acks settle many at a time;
:class:`relay.worker.confirms.Confirms`). When the last confirm of a batch arrives, its
deliveries become ``queued`` (one UPDATE, on the second database thread) and only then are its
outbox messages acked (one ``multiple`` ack per run of settled tags: :mod:`.acks`). A nacked
copy leaves its delivery ``pending`` for the sweep; a returned (unroutable) one goes to the
retry schedule (``retrying``: backoff, then ``failed`` and the sender told); a returned or
nacked status forward or receipt is kept in ``bounces`` and retried by the schedule, so an
outbox message is never handed back for it (issue 12 items 6 and 9).

The copies of a fan-out publish are counted (:data:`PUBLISH_BYTES` each, plus the body when it
is copied) until confirmed. They go out in order while the copies in flight hold less than the
bound (``COPY_BYTES_FACTOR`` × ``intake_max_bytes``, :mod:`.intake`); the rest wait in
``_unsent`` and go as confirms free the bound, so a batch of many documents to many recipients
holds the bound in frames, not the batch's documents × recipients. An urgent lane's batch goes at
once, never behind them (issue 18).
"""

from __future__ import annotations

import time
from typing import Any

import pika.channel
import pika.exceptions
import pika.spec
import structlog
from sqlalchemy import Connection

from relay.retry import bounces
from relay.worker import store
from relay.worker.amqp import ZERO_COPY_BYTES, Properties
from relay.worker.confirms import InFlight, Outcome, Verdict, outcome, verdict
from relay.worker.intake import COPY_BYTES_FACTOR, may_resume
from relay.worker.loopstate import LoopState
from relay.worker.process import Publish
from relay.worker.receipt_groups import group_receipts
from schemas import topology as t

log = structlog.get_logger()

#: What one publish holds beside a copied body until confirmed (its frames' method and header,
#: the bookkeeping objects), for the bound on copies in flight.
PUBLISH_BYTES = 1024


class Publishing(LoopState):
    """Publishes, returns, confirms; recording ``queued``; acking outbox messages."""

    def _send(self, flight: InFlight, *, at_once: bool = False) -> None:
        """Publish what ``flight`` produced: in order behind what waits for the bound on copies
        in flight, or (``at_once``: the urgent lane) now."""
        ch = self._publish
        assert ch is not None and self._conn is not None
        if not ch.is_open:
            raise pika.exceptions.ChannelWrongStateError("the publish channel is not open")
        items: list[tuple[Publish, int]] = []
        for h in flight.handled:
            # Copies are counted for fan-out only: a message's copy and receipt are a small
            # multiple of its body, which intake_max_bytes bounds already.
            fan_out = len(h.publishes) > 2
            for pub in h.publishes:
                size = len(pub.outgoing.body)
                counted = PUBLISH_BYTES + (size if size < ZERO_COPY_BYTES else 0) if fan_out else 0
                items.append((pub, counted))
        for pub, counted in group_receipts(items) if self.settings.group_receipts else items:
            flight.outstanding += 1
            if at_once:
                self._publish_one(flight, pub, counted)
            else:
                self._unsent.append((flight, pub, counted))
                self._unsent_bytes += counted
        if flight.outstanding == 0:
            self._complete(flight)
            return
        self._inflight.add(id(flight))
        self._send_unsent()
        if self._unsent:
            log.debug(
                "relay.copies_waiting",
                waiting=len(self._unsent),
                in_flight_bytes=self._copy_bytes,
            )

    def _send_unsent(self) -> None:
        """Publish what waits, in order, while the copies in flight hold less than the bound
        (one at a time when a single copy is larger)."""
        ch = self._publish
        if ch is None or not ch.is_open or self._closing:
            return  # the broker takes the outbox messages back when the connection closes
        bound = COPY_BYTES_FACTOR * self.settings.intake_max_bytes
        while self._unsent and (self._copy_bytes < bound or not len(self._confirms)):
            flight, pub, counted = self._unsent.popleft()
            self._unsent_bytes -= counted
            self._publish_one(flight, pub, counted)

    def _publish_one(self, flight: InFlight, pub: Publish, counted: int) -> None:
        ch, conn = self._publish, self._conn
        assert ch is not None and conn is not None
        out = pub.outgoing
        props = Properties(
            content_type=t.CONTENT_TYPE,
            headers=out.headers or None,
            delivery_mode=2,
            correlation_id=out.correlation_id,
            message_id=out.message_id,
            timestamp=int(time.time()),
            type=out.message_type,
            app_id="lienthong-relay",
        )
        conn.send_publish(ch.channel_number, t.DELIVER_EXCHANGE, out.routing_key, out.body, props)
        self._confirms.published((flight, pub, counted))
        self._copy_bytes += counted

    def _on_return(
        self,
        _ch: pika.channel.Channel,
        method: pika.spec.Basic.Return,
        props: pika.spec.BasicProperties,
        _body: bytes,
    ) -> None:
        # RabbitMQ sends basic.return before the confirm of the same publish.
        reason = f"returned by the broker: {method.reply_code} {method.reply_text}"
        if props.message_id:
            self._returned[props.message_id] = reason
        log.warning(
            "delivery.unroutable",
            message_id=props.message_id,
            recipient=method.routing_key,
            reason=reason,
        )

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        acked = isinstance(method, pika.spec.Basic.Ack)
        for flight, pub, counted in self._confirms.confirmed(
            method.delivery_tag, multiple=method.multiple
        ):
            self._copy_bytes -= counted  # confirmed: the broker has it
            returned = self._returned.pop(pub.outgoing.message_id, None)
            result = outcome(acked, returned)
            if result is Outcome.NACKED:
                log.warning("delivery.nacked", message_id=pub.outgoing.message_id)
            if flight.settle(pub, result, returned):
                self._inflight.discard(id(flight))
                self._complete(flight)
        self._send_unsent()

    def _complete(self, flight: InFlight) -> None:
        assert self._db_queued is not None
        self._jobs += 1
        if flight.times is not None:
            flight.times.confirmed = time.monotonic()

        def record(conn: Connection) -> None:
            store.mark_queued(conn, flight.confirmed, flight.published_at)
            store.note_publish_failure(conn, flight.failures)
            store.hand_to_retry(conn, flight.unroutable)
            for out, why in flight.bounced:
                bounces.record(conn, self.settings, out, why)

        self._db_queued.submit(record, lambda _r: self._acknowledge(flight))
        if self._pending and not self._batches and not self._closing:
            self._flush()  # what waited for these copies to be confirmed

    def _acknowledge(self, flight: InFlight) -> None:
        """The database says queued (or why not): only now ack the outbox messages."""
        self._jobs -= 1
        if flight.times is not None:
            stages = flight.times.stages_ms(time.monotonic())
            if stages:
                documents = sum(1 for h in flight.handled if h.inbound is not None)
                log.debug("relay.flight", documents=documents, **stages)
        # A duplicate or the sweep may consider these deliveries again.
        with self._publishing_lock:
            for h in flight.handled:
                for pub in h.publishes:
                    if pub.delivery_id is not None:
                        left = self._publishing.pop(pub.delivery_id, 1) - 1
                        if left > 0:
                            self._publishing[pub.delivery_id] = left
        ch = self._consume
        if verdict(recorded=True, closing=self._closing) is Verdict.HOLD:
            return  # the broker hands the outbox messages back when the channel closes
        if ch is not None and ch.is_open:
            for h in flight.handled:
                if h.inbound is None:
                    continue
                self._held_bytes -= len(h.inbound.envelope.body)
                self._held_count -= 1
                self._held_by_queue[h.inbound.queue] -= 1
                if not self._held_by_queue[h.inbound.queue]:
                    del self._held_by_queue[h.inbound.queue]
                self._acks.settle(h.inbound.tag, True)
            self._ack_settled(ch)
            if may_resume(
                paused=self._paused,
                held_bytes=self._held_bytes,
                intake_max_bytes=self.settings.intake_max_bytes,
            ):
                self._resume_intake()
        if self._stopping and not self._inflight and not self._jobs:
            self._close()

    def _ack_settled(self, ch: pika.channel.Channel) -> None:
        """Ack what is settled: one ``multiple`` ack for the run in front; each on its own once
        stopping (messages that arrive then are not recorded, see :mod:`.acks`)."""
        if self._stopping:
            for tag in self._acks.drain():
                ch.basic_ack(tag)
            return
        last = self._acks.ack_multiple()
        if last is not None:
            ch.basic_ack(last, multiple=True)
