"""The relay's broker connection: one pika ``SelectConnection`` (asynchronous ioloop), its
channels, and how it stops.

Three channels: one consumes every active connected agency's outbox, one publishes to the
inboxes in confirm mode, and one declares outboxes (:mod:`.outboxes`: a declaration the broker
refuses closes only that channel). Database work runs in two
:class:`relay.worker.dbthread.DbThread` beside the ioloop, started and stopped with the
connection.

A channel failure or a bug closes the connection; the broker then hands every unacked outbox
message back, and :func:`relay.worker.main.run_relay` reconnects. PostgreSQL being unreachable
does not close anything (:mod:`relay.worker.dbthread`). A stop (signal) cancels the consumers,
sends what was gathered, and closes once every batch is confirmed and recorded, or after
:data:`STOP_GRACE_SECONDS`, handing the rest back.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pika
import pika.channel
import pika.connection
import structlog

from relay.broker.errors import describe, unreachable
from relay.worker.amqp import RelayConnection, take_deliveries
from relay.worker.dbthread import DatabaseHealth, DbThread
from relay.worker.loopstate import LoopState

log = structlog.get_logger()

#: How long a stop waits for outstanding confirms before handing messages back.
STOP_GRACE_SECONDS = 15.0


class Lifecycle(LoopState):
    """Opening the connection and its channels, failing, closing and stopping."""

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
        log.warning("relay.broker_unreachable", error=unreachable(self.settings.amqp_url, err))
        assert self._conn is not None
        self._conn.ioloop.stop()

    def _on_closed(self, conn: pika.connection.Connection, reason: BaseException) -> None:
        if not self._closing:
            log.warning("relay.connection_lost", error=describe(reason))
        assert self._conn is not None
        self._conn.ioloop.stop()

    def _on_consume_channel(self, ch: pika.channel.Channel) -> None:
        self._consume = ch
        take_deliveries(ch, self._dispatch_delivery)
        ch.add_on_close_callback(self._on_channel_closed)
        ch.add_on_cancel_callback(self._on_broker_cancel)
        ch.basic_qos(prefetch_count=self._prefetch, callback=self._on_qos)

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
