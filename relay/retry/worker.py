"""The retry worker: consumes ``lienthong.returned`` and runs the retry schedule.

One thread, one pika connection (pika's BlockingConnection is not thread-safe), one engine.
``run_relay`` starts it in a thread and sets ``stop`` to end it; unacked returns go back to
the queue when the connection closes, and the schedule lives in PostgreSQL, so a stop at any
point loses nothing.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from typing import Any

import pika
import pika.exceptions
import structlog
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import Basic, BasicProperties
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from relay.blobs import expiry
from relay.config import Settings
from relay.domain.outgoing import Outgoing
from relay.domain.safe_text import optional_text
from relay.errors import LienthongError
from relay.retry import amqp, schedule
from relay.retry.returns import Handled, Returned, handle_returned
from relay.worker.dbthread import Failure, classify
from schemas import topology as t

log = structlog.get_logger()

#: Returned messages handled at once; returns are rare, this only bounds memory.
PREFETCH = 50
#: Reconnect delays after a broker or database outage (seconds): doubling, capped.
RECONNECT_FIRST, RECONNECT_MAX = 0.5, 15.0
#: Statements of the retry worker end in an error after this long (milliseconds).
STATEMENT_TIMEOUT_MS = 120_000
#: While PostgreSQL is down, held returns are tried again after this pause, doubling (s).
DB_WAIT_FIRST, DB_WAIT_MAX = 0.5, 10.0
#: Pause of the schedule after a database error in one pass (seconds).
TICK_BACKOFF_SECONDS = 2.0


class RetryWorker:
    """Returned deliveries in, retries and probes out (DESIGN §2 step 6)."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        """``engine``: the retry worker's own (built by the composition root,
        :func:`relay.worker.main.build_retry_engine`; its caller disposes of it)."""
        self.settings = settings
        self._rng = random.Random()
        self._engine: Engine | None = engine
        self._publish_channel: BlockingChannel | None = None
        self._next_tick = 0.0
        self._next_expiry = 0.0
        self._started = False
        self._consume_channel: BlockingChannel | None = None
        self._consumer_tag: str | None = None
        #: returns received while PostgreSQL is down, kept unacked until it is back
        self._held: list[tuple[int, Returned]] = []
        #: returns handled (their decisions committed) whose receipts are not yet published:
        #: what one process_data_events call handed over (at most PREFETCH), acked together;
        #: while PostgreSQL is down they wait with the held ones (the receipts' marks are
        #: cleared in the database)
        self._done: list[tuple[int, Handled]] = []
        self._db_down_until: float | None = None
        self._db_wait = DB_WAIT_FIRST
        self._schedule_failing = False

    def run(self, stop: threading.Event) -> None:
        """Work until ``stop`` is set; survives broker and database outages."""
        delay = RECONNECT_FIRST
        try:
            while not stop.is_set():
                self._started = False
                try:
                    self._session(stop)
                except (LienthongError, SQLAlchemyError, pika.exceptions.AMQPError) as e:
                    log.warning("retry.worker_interrupted", error=str(e), retry_in=delay)
                except Exception:  # the loop boundary: log, wait, start again
                    log.exception("retry.worker_crashed", retry_in=delay)
                if self._started:  # a session that ran well starts the backoff again
                    delay = RECONNECT_FIRST
                stop.wait(delay)
                delay = min(delay * 2, RECONNECT_MAX)
        finally:
            log.info("retry.worker_stopped")

    def _session(self, stop: threading.Event) -> None:
        conn = amqp.connect(self.settings.amqp_url, name="lienthong relay retries")
        try:
            self._publish_channel = amqp.open_confirm_channel(conn)
            consume = conn.channel()
            consume.basic_qos(prefetch_count=PREFETCH)
            self._consume_channel = consume
            self._held = []
            self._done = []
            self._db_down_until = None
            self._consumer_tag = consume.basic_consume(t.RETURNED_QUEUE, self._on_returned)
            log.info("retry.worker_started", queue=t.RETURNED_QUEUE)
            self._started = True
            while not stop.is_set():
                conn.process_data_events(time_limit=min(self.settings.retry_tick_seconds, 0.2))
                if self._db_down_until is not None:
                    self._retry_held()  # the returns handled before it went down wait too
                else:
                    self._finish_done()
                    self._tick_if_due()
        finally:
            self._consume_channel = None
            self._publish_channel = None
            if conn.is_open:
                with contextlib.suppress(pika.exceptions.AMQPError):
                    conn.close()

    def _tick_if_due(self) -> None:
        now = time.monotonic()
        if now < self._next_tick:
            return
        self._next_tick = now + self.settings.retry_tick_seconds
        try:
            self._tick()
        except SQLAlchemyError as e:
            # A deadlock with another relay or a database restart: the pass was rolled back
            # and nothing is lost; try again a little later without dropping the broker. Said
            # once per outage, not once per pass.
            self._next_tick = now + TICK_BACKOFF_SECONDS
            if not self._schedule_failing:
                self._schedule_failing = True
                log.warning("retry.schedule_failed", error=str(e).splitlines()[0])
            return
        if self._schedule_failing:
            self._schedule_failing = False
            log.warning("retry.schedule_resumed")

    def _tick(self) -> None:
        assert self._engine is not None
        schedule.probe_destinations(self._engine, self.settings, self._publish)
        # Drain what is due in batches, but give returns a turn between batches.
        schedule.publish_due(self._engine, self.settings, self._publish)
        now = time.monotonic()
        if now >= self._next_expiry:  # issue 17: chunked transfers that never finish
            self._next_expiry = now + expiry.check_interval(self.settings)
            expiry.expire_transfers(self._engine, self.settings, self._publish)
        # delivery_failed receipts stored by a relay that stopped before the broker confirmed
        schedule.republish_receipts(self._engine, self.settings, self._publish)

    def _publish(self, out: Outgoing) -> None:
        assert self._publish_channel is not None
        amqp.publish(self._publish_channel, out)

    def _on_returned(
        self,
        channel: BlockingChannel,
        method: Basic.Deliver,
        props: BasicProperties,
        body: bytes,
    ) -> None:
        assert self._engine is not None
        headers: dict[str, Any] = dict(props.headers or {})
        msg = Returned(
            # text PostgreSQL accepts (a NUL made visible): a message id nobody can match
            message_id=optional_text(props.message_id),
            message_type=optional_text(props.type),
            headers=headers,
            body=body,
            correlation_id=props.correlation_id,
        )
        if self._db_down_until is not None:  # delivered before the cancel took effect
            self._held.append((method.delivery_tag, msg))
            return
        try:
            handled = handle_returned(self._engine, self.settings, msg, rng=self._rng)
        except SQLAlchemyError as e:
            if classify(e) is not Failure.UNREACHABLE:
                raise  # the connection is closed, the message is not acked and comes back
            # PostgreSQL is down: keep the message unacked on this connection (a requeue would
            # be a redelivery the quorum queue counts), stop taking more, wait for it.
            self._held.append((method.delivery_tag, msg))
            self._db_down(e)
            return
        self._done.append((method.delivery_tag, handled))

    def _finish_done(self) -> None:
        """Publish the receipts of the returns handled since the last call, then ack them.

        A burst of returns (a recipient down for a day: its deliveries fail together) comes in
        one process_data_events call, at most PREFETCH of them, since none is acked before
        this: their delivery_failed receipts go together (one message per sender,
        :func:`relay.retry.schedule.send_receipts`), not one confirm each. A receipt no inbox
        takes is kept and retried, not raised (that would bring the return back for ever). A
        crash before the acks brings the returns back; a delivery already failed publishes
        its receipt again with the same id."""
        if not self._done:
            return
        done, self._done = self._done, []
        receipts = [out for _, handled in done for out in handled.to_publish]
        schedule.send_receipts(self._engine_or_fail(), self.settings, receipts, self._publish)
        # Ack only once the decisions are committed and the receipts are confirmed.
        ch = self._consume_channel
        assert ch is not None
        for tag, _ in done:
            ch.basic_ack(tag)

    # -- PostgreSQL down: hold the returns, wait, resume ------------------------------------

    def _db_down(self, error: SQLAlchemyError) -> None:
        if self._db_down_until is None:
            log.warning("retry.database_down", error=str(error).splitlines()[0])
            self._db_wait = DB_WAIT_FIRST
            ch = self._consume_channel
            if ch is not None and self._consumer_tag is not None:
                ch.basic_cancel(self._consumer_tag)
                self._consumer_tag = None
        self._db_down_until = time.monotonic() + self._db_wait

    def _retry_held(self) -> None:
        """While PostgreSQL is down: try the held returns again, with a doubling pause."""
        assert self._db_down_until is not None
        if time.monotonic() < self._db_down_until:
            return
        ch = self._consume_channel
        assert ch is not None
        while self._held:
            tag, msg = self._held[0]
            try:
                handled = handle_returned(self._engine_or_fail(), self.settings, msg, rng=self._rng)
            except SQLAlchemyError as e:
                if classify(e) is not Failure.UNREACHABLE:
                    raise
                self._db_wait = min(self._db_wait * 2, DB_WAIT_MAX)
                self._db_down_until = time.monotonic() + self._db_wait
                return
            self._held.pop(0)
            self._done.append((tag, handled))
        try:
            with self._engine_or_fail().connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError:
            self._db_wait = min(self._db_wait * 2, DB_WAIT_MAX)
            self._db_down_until = time.monotonic() + self._db_wait
            return
        self._finish_done()
        self._db_down_until = None
        log.warning("retry.database_back")
        self._consumer_tag = ch.basic_consume(t.RETURNED_QUEUE, self._on_returned)

    def _engine_or_fail(self) -> Engine:
        assert self._engine is not None
        return self._engine
