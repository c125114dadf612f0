"""The relay's broker side: one pika ``SelectConnection`` (asynchronous ioloop).

Two channels: one consumes every active connected agency's outbox, one publishes to the inboxes
in confirm mode. Outbox messages are gathered into batches (``batch_size`` or ``batch_wait_ms``);
each batch is handled by :class:`relay.worker.process.BatchProcessor` in ONE database
transaction, then everything it produced is published at once: many publishes await their
confirms together (``multiple=True`` acks settle many at a time). When the last confirm of a batch
arrives, its deliveries become ``queued`` (one UPDATE) and only then are its outbox messages
acked. A nacked copy leaves its delivery ``pending`` for the sweep; a returned (unroutable) one
goes to the retry schedule (``retrying``: backoff, then ``failed`` and the sender told); a
returned or nacked status forward or receipt is kept in ``bounces`` and retried by the schedule,
so an outbox message is never handed back for it (issue 12 items 6 and 9).

Database work runs in :class:`relay.worker.dbthread.DbThread`, beside the ioloop. A partial
batch (cut by ``batch_wait_ms``) waits while the database is still on the previous batch and goes
as soon as that one is answered, so a steady trickle makes fewer, bigger transactions instead of
a commit per few documents; a full batch (``batch_size``, or a quarter of ``intake_max_bytes``) goes
at once.
PostgreSQL being unreachable does not close anything: the database thread waits for it with
backoff and the same work runs again (:mod:`relay.worker.dbthread`), so the broker connection
and the unacked outbox messages are kept; the directory poll and the sweep run on the database
thread too, never on the ioloop. A channel failure or a bug closes the connection; the broker
then hands every unacked outbox message back, and :func:`relay.worker.main.run_relay`
reconnects. An outbox that cannot be declared (declared elsewhere with other arguments: 406) is
skipped and tried again at the next directory poll, on a channel of its own, so the other
outboxes go on; a consumer the broker cancels (queue deleted) is forgotten and picked up again
when the queue is back.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

import pika
import pika.channel
import pika.exceptions
import pika.spec
import structlog
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from relay.broker.topology import QUORUM
from relay.config import Settings
from relay.domain.intake import envelope
from relay.domain.safe_text import json_safe, raw_of_unsafe
from relay.metrics.hot import intake_paused, observe_batch
from relay.retry import bounces
from relay.worker import store
from relay.worker.acks import OutboxAcks
from relay.worker.amqp import (
    ZERO_COPY_BYTES,
    Properties,
    RelayConnection,
    take_deliveries,
    unused_consumer_callback,
)
from relay.worker.confirms import Confirms, InFlight, Outcome, Verdict, outcome, verdict
from relay.worker.dbthread import (
    RELEASE_CONNECTION,
    DatabaseHealth,
    DbThread,
    Failure,
    classify,
)
from relay.worker.partition import Partition
from relay.worker.process import BatchProcessor, Handled, Inbound, Publish, republish_pending
from relay.worker.repository import SqlBatchRepository
from schemas import topology as t

log = structlog.get_logger()

#: A batch is also cut when its bodies add up to ``intake_max_bytes`` divided by this (big
#: attachments), so one batch is stored while the next gathers, and the copies a batch costs
#: while it is stored (psycopg's parameters, libpq's buffer) stay small: 1MiB-attachment PSS
#: 291-299 MB with a half, 259-272 MB with a quarter.
BATCH_BYTES_SHARE = 4
#: A batch whose bodies add up to this many bytes is stored on a connection closed afterwards:
#: libpq keeps a buffer as large as the largest statement it sent (measured: a 21 MB document
#: kept 20 MB in the worker until the connection closed), which would stay in every worker.
RELEASE_CONNECTION_BYTES = 12 * 1024 * 1024
#: Copies published and not yet confirmed may hold this many times ``intake_max_bytes``
#: before the next batch waits for their confirms.
COPY_BYTES_FACTOR = 1
#: What one publish holds beside a copied body until confirmed (its frames' method and header,
#: the bookkeeping objects), for the bound on copies in flight.
PUBLISH_BYTES = 1024
#: How many stale pending deliveries one sweep republishes.
SWEEP_LIMIT = 1000
#: ... and how many bytes of documents one sweep holds (each document is read once, however
#: many of its deliveries are pending; the first document goes whatever its size).
SWEEP_MAX_BYTES = 32 * 1024 * 1024
#: How long a stop waits for outstanding confirms before handing messages back.
STOP_GRACE_SECONDS = 15.0


def _properties_dict(props: pika.spec.BasicProperties) -> dict[str, Any]:
    """The message's properties as JSON, for a stored rejection: text made safe for ``jsonb``,
    and under ``raw`` the exact bytes (base64) of every value that had to be changed."""
    out: dict[str, Any] = {}
    raw: dict[str, str] = {}
    for name in (
        "message_id",
        "user_id",
        "type",
        "content_type",
        "content_encoding",
        "correlation_id",
        "app_id",
        "timestamp",
        "delivery_mode",
    ):
        value = getattr(props, name, None)
        if value is not None:
            out[name] = json_safe(value)
            raw.update(raw_of_unsafe({name: value}))
    if props.headers:
        out["headers"] = json_safe(props.headers)
        raw.update(raw_of_unsafe({f"headers.{k!s}": v for k, v in props.headers.items()}))
    if raw:
        out["raw"] = raw
    return out


class RelayLoop:
    """One connection's lifetime. ``run()`` returns when the connection is closed."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        stop: threading.Event | None = None,
        partition: Partition | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        #: the outboxes this worker consumes; the leader also sweeps stale pending deliveries
        self.partition = partition or Partition()
        self._stop_event = stop or threading.Event()
        self.connected = False  # became true once both channels were ready
        self._conn: RelayConnection | None = None
        self._consume: pika.channel.Channel | None = None
        self._publish: pika.channel.Channel | None = None
        self._consumers: dict[str, str] = {}  # agency code -> consumer tag
        #: the channel outboxes are declared on, and the declarations waiting for it
        self._declare: pika.channel.Channel | None = None
        self._to_declare: deque[tuple[str, str, Callable[[Any], None]]] = deque()
        self._declaring: tuple[str, str] | None = None
        self._skipped: set[str] = set()  # outboxes the broker refused to declare
        #: consumer tag -> (queue, agency), until the broker confirms its cancel
        self._handlers: dict[str, tuple[str, str]] = {}
        self._owned: set[str] = set()  # active agencies whose outbox this worker consumes
        #: bytes of outbox messages received and not yet acked; above ``intake_max_bytes`` the
        #: consumers are cancelled (``_paused``) until half of it is left
        self._held_bytes = 0
        self._held_count = 0
        #: the prefetch (messages) given to the consumers started now: lowered when large
        #: messages filled ``intake_max_bytes`` (see ``_pause_intake``)
        self._prefetch = settings.prefetch
        self._paused = False
        self._consumer_serial = 0
        self._pending: list[Inbound] = []
        self._pending_bytes = 0
        #: bytes the published, unconfirmed copies hold (frames; a large body is not copied)
        self._copy_bytes = 0
        self._flush_timer: object | None = None
        self._timers: dict[str, object] = {}
        #: publishes awaiting their confirm, with the batch each belongs to (see .confirms)
        self._confirms: Confirms[tuple[InFlight, Publish]] = Confirms()
        self._returned: dict[str, str] = {}
        self._inflight: set[int] = set()  # ids of InFlight objects not yet completed
        self._publishing: dict[int, int] = {}  # delivery id -> publishes awaiting confirm
        self._publishing_lock = threading.Lock()
        self._db: DbThread | None = None
        #: confirmed publishes are recorded (``queued``) on a connection of their own, so that
        #: PostgreSQL works on them while the next batch is being stored
        self._db_queued: DbThread | None = None
        self._jobs = 0  # work handed to the database thread and not yet answered
        self._batches = 0  # batches handed to the database thread and not yet answered
        self._stopping = False
        self._closing = False
        #: outbox acks: one ``multiple`` ack per run of settled delivery tags (see .acks)
        self._acks = OutboxAcks()

    # -- lifecycle ----------------------------------------------------------------------

    def run(self) -> None:
        params = pika.URLParameters(self.settings.amqp_url)
        params.connection_attempts = 1
        self._conn = RelayConnection(
            params,
            on_open_callback=self._on_open,
            on_open_error_callback=self._on_open_error,
            on_close_callback=self._on_closed,
        )
        post = self._conn.ioloop.add_callback_threadsafe
        health = DatabaseHealth()
        self._db = DbThread(self.engine, post, self._fail, health=health)
        self._db_queued = DbThread(
            self.engine, post, self._fail, name="lienthong-relay-db-queued", health=health
        )
        self._db.start()
        self._db_queued.start()
        try:
            try:
                self._conn.ioloop.start()
            except Exception:
                # Close the connection properly, so the broker takes back the unacked messages
                # now rather than when the socket times out; then let the caller log and retry.
                self._closing = True
                with contextlib.suppress(Exception):
                    if self._conn.is_open:
                        self._conn.close()
                        self._conn.ioloop.start()
                raise
        finally:
            # nothing more to commit for a connection that is gone
            self._db.failed = self._db_queued.failed = True
            self._db.stop()
            self._db_queued.stop()

    def request_stop(self) -> None:
        """Thread-safe (and signal-safe): stop consuming, finish in-flight work, close."""
        conn = self._conn
        if conn is None:
            return
        with contextlib.suppress(Exception):  # the ioloop may already be closed
            conn.ioloop.add_callback_threadsafe(self._begin_stop)

    def _on_open(self, conn: pika.connection.Connection) -> None:
        conn.channel(on_open_callback=self._on_consume_channel)

    def _on_open_error(self, conn: pika.connection.Connection, err: BaseException) -> None:
        log.warning("relay.broker_unreachable", error=str(err))
        assert self._conn is not None
        self._conn.ioloop.stop()

    def _on_closed(self, conn: pika.connection.Connection, reason: BaseException) -> None:
        if not self._closing:
            log.warning("relay.connection_lost", error=str(reason))
        assert self._conn is not None
        self._conn.ioloop.stop()

    def _on_consume_channel(self, ch: pika.channel.Channel) -> None:
        self._consume = ch
        take_deliveries(ch, self._dispatch_delivery)
        ch.add_on_close_callback(self._on_channel_closed)
        ch.add_on_cancel_callback(self._on_broker_cancel)
        ch.basic_qos(prefetch_count=self.settings.prefetch, callback=self._on_qos)

    def _on_qos(self, _frame: Any) -> None:
        assert self._conn is not None
        self._conn.channel(on_open_callback=self._on_publish_channel)

    def _on_publish_channel(self, ch: pika.channel.Channel) -> None:
        self._publish = ch
        ch.add_on_close_callback(self._on_channel_closed)
        ch.add_on_return_callback(self._on_return)
        ch.confirm_delivery(ack_nack_callback=self._on_confirm, callback=self._on_publish_ready)

    def _on_publish_ready(self, _frame: Any) -> None:
        assert self._conn is not None
        self._conn.channel(on_open_callback=self._on_declare_channel)

    def _on_declare_channel(self, ch: pika.channel.Channel) -> None:
        """Outboxes are declared on a channel of their own: a declaration the broker refuses
        (406: the queue exists with other arguments) closes only this channel."""
        first = self._declare is None
        self._declare = ch
        ch.add_on_close_callback(self._on_declare_closed)
        if first:
            self._on_ready(None)
        else:
            self._declare_next()

    def _on_ready(self, _frame: Any) -> None:
        self.connected = True
        log.info("relay.started", vhost=self.settings.vhost, worker=str(self.partition))
        if self._stop_event.is_set():  # a signal came while connecting
            self._begin_stop()
            return
        self._poll_directory()
        self._sweep()

    def _on_channel_closed(self, ch: pika.channel.Channel, reason: BaseException) -> None:
        if self._closing:
            return
        self._fail(f"channel {ch.channel_number} closed: {reason}")

    def _fail(self, why: str) -> None:
        """Give up this connection; the broker requeues every unacked outbox message."""
        log.error("relay.connection_abandoned", reason=why)
        self._close()

    def _close(self) -> None:
        if self._closing:
            return
        self._closing = True
        for timer in [*self._timers.values(), self._flush_timer]:
            if timer is not None and self._conn is not None:
                self._conn.ioloop.remove_timeout(timer)
        assert self._conn is not None
        if self._conn.is_open:
            self._conn.close()
        elif not self._conn.is_closing:
            self._conn.ioloop.stop()

    def _begin_stop(self) -> None:
        if self._stopping or self._closing:
            return
        self._stopping = True
        log.info("relay.stopping", in_flight=len(self._inflight), gathered=len(self._pending))
        if self._consume is not None and self._consume.is_open:
            for tag in self._consumers.values():
                self._cancel_consumer(self._consume, tag)
            self._ack_settled(self._consume)  # what waited for a multiple ack goes now
        self._consumers.clear()
        self._flush()
        if not self._inflight and not self._jobs:
            self._close()
        else:
            assert self._conn is not None
            self._timers["stop"] = self._conn.ioloop.call_later(STOP_GRACE_SECONDS, self._close)

    def _later(self, name: str, seconds: float, fn: Callable[[], None]) -> None:
        assert self._conn is not None
        self._timers[name] = self._conn.ioloop.call_later(seconds, fn)

    # -- directory: which outboxes to consume -------------------------------------------

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
        # RabbitMQ bounds unacked messages by count only, and a cancelled consumer's unacked
        # messages do not count against its successor's prefetch: at each resume the broker
        # could push a whole prefetch of large messages (250 chunks of 1 MiB: 333 MB held by a
        # relay sending a 1 GB attachment). The consumers started next get a prefetch sized so
        # that messages of the size now held fill at most half of intake_max_bytes.
        average = max(1, self._held_bytes // max(1, self._held_count))
        self._prefetch = max(
            1, min(self.settings.prefetch, self.settings.intake_max_bytes // 2 // average)
        )
        ch = self._consume
        if ch is not None and ch.is_open:
            for tag in self._consumers.values():
                self._cancel_consumer(ch, tag)
        self._consumers.clear()
        log.debug("relay.intake_paused", held_bytes=self._held_bytes)

    def _resume_intake(self) -> None:
        self._paused = False
        intake_paused(False)
        ch = self._consume
        if ch is None or not ch.is_open or self._stopping or self._closing:
            return
        log.debug("relay.intake_resumed", held_bytes=self._held_bytes, prefetch=self._prefetch)
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
                if resuming:
                    log.debug("relay.outbox_consumed", agency=code, queue=queue)
                else:
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

    # -- consuming and batching ---------------------------------------------------------

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
            properties=functools.partial(_properties_dict, props),
        )
        if queue.endswith(t.URGENT_SUFFIX):
            # Urgent lane (issue 18): a batch of its own at once, on the other database thread,
            # never behind the ordinary batches already taken (up to the prefetch).
            assert self._db_queued is not None
            self._jobs += 1
            self._db_queued.submit(lambda c: self._process_in(c, [inbound]), self._after_urgent)
        else:
            self._pending.append(inbound)
            self._pending_bytes += len(body)
        self._held_bytes += len(body)
        self._held_count += 1
        if not self._paused and self._held_bytes > self.settings.intake_max_bytes:
            self._pause_intake()
        elif (
            not self._paused
            and self._prefetch < self.settings.prefetch
            and self._held_count >= self._prefetch
            and self._held_bytes <= self.settings.intake_max_bytes // 4
        ):
            # A lowered prefetch full of small messages: consumers with a larger one (each
            # restart at least doubles it).
            self._pause_intake()
            self._resume_intake()
        if (
            len(self._pending) >= self.settings.batch_size
            or self._pending_bytes >= self.settings.intake_max_bytes // BATCH_BYTES_SHARE
        ):
            self._flush()
        elif self._flush_timer is None:
            assert self._conn is not None
            # An idle database takes what this turn of the ioloop brought at once (nothing to
            # wait for); a busy one gets a batch gathered for up to ``batch_wait_ms``.
            wait = self.settings.batch_wait_ms / 1000.0 if self._jobs else 0.0
            self._flush_timer = self._conn.ioloop.call_later(wait, self._on_flush_timer)

    def _on_flush_timer(self) -> None:
        self._flush_timer = None
        self._flush(wait_for_db=True)

    def _flush(self, *, wait_for_db: bool = False) -> None:
        if self._flush_timer is not None and self._conn is not None:
            self._conn.ioloop.remove_timeout(self._flush_timer)
            self._flush_timer = None
        if wait_for_db and self._batches and not self._stopping:
            # The database is still on the previous batch: keep gathering; this one goes as
            # soon as that one is answered (one bigger transaction instead of many small ones,
            # so a steady trickle does not pay a commit per few documents).
            return
        if (
            self._copy_bytes >= COPY_BYTES_FACTOR * self.settings.intake_max_bytes
            and self._inflight
            and not self._stopping
        ):
            # The copies already published hold that many bytes until confirmed (a fan-out
            # batch is the body times its recipients): the next batch goes when they are.
            return
        size = self.settings.batch_size
        batch, self._pending = self._pending[:size], self._pending[size:]
        self._pending_bytes = sum(len(m.envelope.body) for m in self._pending)
        if not batch or self._closing:
            return
        assert self._db is not None
        self._jobs += 1
        self._batches += 1
        self._db.submit(lambda conn: self._process_in(conn, batch), self._after_process)

    def _after_process(self, handled: list[Handled]) -> None:
        self._jobs -= 1
        self._batches -= 1
        if self._closing:
            return
        if self._pending and not self._batches:
            self._flush()  # what gathered meanwhile: the database is free again
        self._send(InFlight(handled=handled))
        log.debug(
            "relay.batch",
            size=sum(1 for h in handled if h.inbound is not None),
            publishes=sum(len(h.publishes) for h in handled),
        )

    def _after_urgent(self, handled: list[Handled]) -> None:
        self._jobs -= 1
        if not self._closing:
            self._send(InFlight(handled=handled))

    def _process_in(self, conn: Connection, batch: list[Inbound]) -> list[Handled]:
        """Runs in the database thread, inside its transaction. A database error about this
        data (not the connection) or a bug is confined to a savepoint; the batch is then
        handled message by message, so one bad apple is rejected instead of blocking its
        neighbours forever."""
        max_bytes = self.settings.max_message_bytes
        handled: list[Handled] = []
        started = time.perf_counter()
        if sum(len(m.envelope.body) for m in batch) >= RELEASE_CONNECTION_BYTES:
            conn.info[RELEASE_CONNECTION] = True  # see RELEASE_CONNECTION_BYTES
        try:
            with conn.begin_nested():
                handled = BatchProcessor(SqlBatchRepository(conn), max_bytes, self._publishing).run(
                    batch
                )
        except SQLAlchemyError as e:
            if classify(e) is not Failure.FATAL:
                raise  # the database is gone or the transaction conflicted: all of it again
            log.exception("relay.batch_failed", size=len(batch))
            handled = [self._process_one(conn, m) for m in batch]
        except Exception:
            log.exception("relay.batch_failed", size=len(batch))
            handled = [self._process_one(conn, m) for m in batch]
        with self._publishing_lock:
            for h in handled:
                for pub in h.publishes:
                    if pub.delivery_id is not None:
                        did = pub.delivery_id
                        self._publishing[did] = self._publishing.get(did, 0) + 1
        observe_batch(len(batch), time.perf_counter() - started)
        return handled

    def _process_one(self, conn: Connection, m: Inbound) -> Handled:
        max_bytes = self.settings.max_message_bytes
        try:
            with conn.begin_nested():
                repo = SqlBatchRepository(conn)
                return BatchProcessor(repo, max_bytes, self._publishing).run([m])[0]
        except SQLAlchemyError as e:
            if classify(e) is not Failure.FATAL:
                raise
            return self._reject_failed(conn, m)
        except Exception:
            return self._reject_failed(conn, m)

    def _reject_failed(self, conn: Connection, m: Inbound) -> Handled:
        """A message the relay could not process: rejected with words, kept, never retried
        (retrying would stall the agency's outbox behind it). The sender gets words, not a
        Python repr; the operator gets the traceback, found by the reference both see."""
        ref = uuid.uuid4().hex[:12]
        log.exception("relay.message_failed", message_id=m.envelope.message_id, ref=ref)
        reason = (
            "the relay could not process this message because of an error on the hub "
            f"(reference {ref}); the hub's operators can look it up in the relay's log. "
            "Send it again with a new message_id, or ask them"
        )
        try:
            return self._store_rejection(conn, m, reason, bare=False)
        except SQLAlchemyError as e:
            if classify(e) is not Failure.FATAL:
                raise
        except Exception:
            pass
        # Even the rejection cannot be stored as it is: keep the raw body and the reason with
        # every property left out, rather than stall the agency's outbox.
        log.exception("relay.rejection_failed", message_id=m.envelope.message_id, ref=ref)
        return self._store_rejection(conn, m, reason, bare=True)

    def _store_rejection(self, conn: Connection, m: Inbound, reason: str, *, bare: bool) -> Handled:
        with conn.begin_nested():
            h = Handled(inbound=m)
            proc = BatchProcessor(SqlBatchRepository(conn), self.settings.max_message_bytes)
            proc.reject_alone(h, reason, bare=bare)
        return h

    # -- publishing and confirms --------------------------------------------------------

    def _send(self, flight: InFlight) -> None:
        ch = self._publish
        conn = self._conn
        assert ch is not None and conn is not None
        if not ch.is_open:
            raise pika.exceptions.ChannelWrongStateError("the publish channel is not open")
        now = int(time.time())
        number = ch.channel_number
        for h in flight.handled:
            # Copies are counted for fan-out only: a message's copy and receipt are a small
            # multiple of its body, which intake_max_bytes bounds already.
            fan_out = len(h.publishes) > 2
            for pub in h.publishes:
                out = pub.outgoing
                props = Properties(
                    content_type=t.CONTENT_TYPE,
                    headers=out.headers or None,
                    delivery_mode=2,
                    correlation_id=out.correlation_id,
                    message_id=out.message_id,
                    timestamp=now,
                    type=out.message_type,
                    app_id="lienthong-relay",
                )
                conn.send_publish(number, t.DELIVER_EXCHANGE, out.routing_key, out.body, props)
                self._confirms.published((flight, pub))
                flight.outstanding += 1
                if fan_out:
                    size = len(out.body)
                    flight.copy_bytes += PUBLISH_BYTES + (size if size < ZERO_COPY_BYTES else 0)
        self._copy_bytes += flight.copy_bytes
        if flight.outstanding == 0:
            self._complete(flight)
        else:
            self._inflight.add(id(flight))

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
        for flight, pub in self._confirms.confirmed(method.delivery_tag, multiple=method.multiple):
            returned = self._returned.pop(pub.outgoing.message_id, None)
            result = outcome(acked, returned)
            if result is Outcome.NACKED:
                log.warning("delivery.nacked", message_id=pub.outgoing.message_id)
            if flight.settle(pub, result, returned):
                self._inflight.discard(id(flight))
                self._complete(flight)

    def _complete(self, flight: InFlight) -> None:
        assert self._db_queued is not None
        self._copy_bytes -= flight.copy_bytes  # confirmed: the broker has them
        flight.copy_bytes = 0
        self._jobs += 1

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
                self._acks.settle(h.inbound.tag, True)
            self._ack_settled(ch)
            if self._paused and self._held_bytes <= self.settings.intake_max_bytes // 2:
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

    # -- the sweep: pending deliveries nobody is publishing ------------------------------

    def _sweep(self) -> None:
        if self._stopping or self._closing or not self.partition.leader:
            return
        assert self._db_queued is not None
        older_than = self.settings.pending_sweep_seconds
        self._db_queued.submit(
            lambda conn: store.claim_stale_pending(conn, older_than, SWEEP_LIMIT, SWEEP_MAX_BYTES),
            self._on_swept,
        )

    def _on_swept(self, stale: list[store.PendingDelivery]) -> None:
        if self._stopping or self._closing:
            return
        stale = [p for p in stale if p.delivery_id not in self._publishing]
        if stale:
            log.info("relay.sweep_republished", deliveries=len(stale))
            with self._publishing_lock:
                for p in stale:
                    self._publishing[p.delivery_id] = self._publishing.get(p.delivery_id, 0) + 1
            again = Handled(inbound=None, publishes=republish_pending(stale))
            self._send(InFlight(handled=[again]))
        self._later("sweep", self.settings.pending_sweep_seconds, self._sweep)
