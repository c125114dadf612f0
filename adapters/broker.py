"""The adapter's RabbitMQ side: drain the spool to the agency's own submit
exchange (``lienthong.submit.<code>``), consume the inbox.

Urgent documents (``Priority`` 1-4, :mod:`schemas.urgency`) take the urgent lane (DESIGN §3):
they are published to ``lienthong.submit.<code>.urgent``, and the urgent inbox is consumed on a
channel of its own (its own prefetch), its deliveries stored before the ordinary ones of the same
round, so a backlog in the ordinary inbox never delays them. A hub that has no urgent lane yet
(``relay setup`` of this version not run: the urgent inbox is refused, 403, or missing, 404) is
used as before, ordinary lane only, and said once.

One thread owns the connection (pika's BlockingConnection is not thread-safe). It reconnects
forever with exponential backoff and jitter (tenacity) until asked to stop, and logs each
outage once (``adapter.broker_down`` … ``adapter.broker_back``), not once per attempt.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

import pika
import pika.exceptions
import pika.spec
import structlog
from pika.adapters.utils.connection_workflow import AMQPConnectorException
from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_exponential_jitter

from adapters import chunks
from adapters.config import AdapterConfig
from adapters.inbox import Action, Delivery, InboxWriter
from adapters.spool import Outgoing, Spool
from schemas import topology as t
from schemas.errors import ServiceUnavailable
from schemas.urgency import is_urgent_submission

log = structlog.get_logger()


class BrokerUnavailable(ServiceUnavailable):
    """RabbitMQ cannot be reached or dropped the connection; try again later."""


class PublishRefused(BrokerUnavailable):
    """The broker nacked or returned a publish (outbox full, queue missing); retried later."""


def connection_parameters(config: AdapterConfig) -> pika.URLParameters:
    params = pika.URLParameters(config.amqp_url)
    if config.uses_tls:
        params.ssl_options = pika.SSLOptions(config.tls_context(), server_hostname=params.host)
    user, password = config.credentials()
    params.credentials = pika.PlainCredentials(user, password)
    params.heartbeat = config.heartbeat_seconds
    params.connection_attempts = 1
    params.socket_timeout = config.connect_timeout_seconds
    params.stack_timeout = config.connect_timeout_seconds * 2
    params.blocked_connection_timeout = 60
    params.client_properties = {"connection_name": f"lienthong-adapter {config.agency}"}
    return params


def describe(e: BaseException) -> str:
    """A one-line reason for a pika error (pika nests the cause in ``args``)."""
    detail = "; ".join(str(a) or repr(a) for a in e.args) or str(e)
    return f"{type(e).__name__}: {detail}" if detail else type(e).__name__


def connect(config: AdapterConfig) -> pika.BlockingConnection:
    """One connection attempt; BrokerUnavailable (with a reason, no secrets) if it fails."""
    try:
        return pika.BlockingConnection(connection_parameters(config))
    except ssl.SSLError as e:  # a certificate that does not load (or is refused)
        raise BrokerUnavailable(f"{config.safe_url()}: TLS: {e}") from e
    except (pika.exceptions.AMQPError, AMQPConnectorException, OSError) as e:
        # A stalled handshake surfaces as AMQPConnectorStackTimeout, which is no AMQPError.
        raise BrokerUnavailable(f"{config.safe_url()}: {describe(e)}") from e


def publish_properties(config: AdapterConfig, message_id: str, message_type: str) -> Any:
    return pika.BasicProperties(
        message_id=message_id,
        type=message_type,
        user_id=config.agency,
        delivery_mode=2,
        content_type=t.CONTENT_TYPE,
        timestamp=int(time.time()),
        app_id="lienthong-adapter",
    )


class Publisher:
    """Streams publishes with confirms on a BlockingConnection's channel.

    ``BlockingChannel.basic_publish`` waits for each confirm in turn (one broker round trip per
    message, tens of milliseconds on a quorum queue). Here a whole batch is written, then the
    confirms are awaited together, on the channel's underlying asynchronous object: the same
    channel that consumes the inbox, driven by the same ``process_data_events``.
    """

    #: How long a batch may wait for its confirms before the connection is considered lost.
    CONFIRM_TIMEOUT_SECONDS = 60.0

    def __init__(
        self, connection: pika.BlockingConnection, channel: Any, *, urgent_lane: bool = False
    ) -> None:
        self.connection = connection
        #: whether urgent documents go to the urgent submit exchange (the hub has the lane)
        self.urgent_lane = urgent_lane
        self._impl = channel._impl  # pika.channel.Channel behind the BlockingChannel
        self._next_tag = 1
        self._pending: dict[int, str] = {}  # delivery tag -> message_id, awaiting a confirm
        self._acked: set[str] = set()
        self._failed: dict[str, str] = {}  # message_id -> why (nack, return)
        ready: list[bool] = []
        self._impl.add_on_return_callback(self._on_return)
        self._impl.confirm_delivery(
            ack_nack_callback=self._on_confirm, callback=lambda _frame: ready.append(True)
        )
        self._wait(lambda: bool(ready), "Confirm.SelectOk")

    def _wait(self, done: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + self.CONFIRM_TIMEOUT_SECONDS
        while not done():
            self.check_open()
            if time.monotonic() > deadline:
                raise BrokerUnavailable(f"no {what} from the broker in time")
            self.connection.process_data_events(time_limit=0.05)

    def check_open(self) -> None:
        """BrokerUnavailable if the broker closed the channel (the consumer is gone with it)."""
        if not self._impl.is_open:
            reason = getattr(self._impl, "_closing_reason", None)
            raise BrokerUnavailable(f"the broker closed the channel ({reason})")

    def _on_return(self, _channel: Any, _method: Any, properties: Any, _body: bytes) -> None:
        self._failed[properties.message_id] = "returned as unroutable"

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        tags = (
            [t for t in self._pending if t <= method.delivery_tag]
            if method.multiple
            else [method.delivery_tag]
        )
        nack = isinstance(method, pika.spec.Basic.Nack)
        for tag in tags:
            message_id = self._pending.pop(tag, None)
            if message_id is None:
                continue
            if nack:
                self._failed[message_id] = "refused (nack) by the broker"
            else:
                self._acked.add(message_id)

    def publish_batch(self, config: AdapterConfig, rows: list[Outgoing]) -> list[Outgoing]:
        """Publish ``rows`` and wait for their confirms; the confirmed prefix, in order.

        Raises PublishRefused when a row was nacked or returned (after the rows confirmed before
        it), BrokerUnavailable when the connection fails.
        """
        self._acked.clear()
        self._failed.clear()
        for row in rows:
            urgent = self.urgent_lane and is_urgent_submission(row.message_type, row.body)
            self._impl.basic_publish(
                exchange=t.submit_exchange(config.agency, urgent=urgent),
                routing_key=t.submit_routing_key(config.agency),
                body=chunks.wire_body(config, row),  # issue 17: a chunk's bytes, from disk
                properties=publish_properties(config, row.message_id, row.message_type),
                mandatory=True,
            )
            self._pending[self._next_tag] = row.message_id
            self._next_tag += 1
        self._wait(lambda: not self._pending, "publisher confirm")
        confirmed: list[Outgoing] = []
        for row in rows:
            if row.message_id in self._acked and row.message_id not in self._failed:
                confirmed.append(row)
            else:
                break
        return confirmed

    def failure(self) -> str | None:
        if not self._failed:
            return None
        message_id, why = next(iter(self._failed.items()))
        return f"submission {message_id} {why}"


def drain(
    config: AdapterConfig,
    spool: Spool,
    publisher: Publisher,
    should_stop: Callable[[], bool] = lambda: False,
) -> int:
    """Publish unsent spool rows in order, with confirms, marking them sent; returns how many.

    Rows confirmed before a failure are marked sent; the rest stay in the spool (a row sent
    again after a crash carries the same message_id, which the relay recognises).
    """
    total = 0
    while not should_stop():
        rows = chunks.bounded(
            config, spool.unsent(config.publish_batch, config.publish_batch_bytes)
        )
        if not rows:
            break
        try:
            confirmed = publisher.publish_batch(config, rows)
        except (pika.exceptions.AMQPError, OSError) as e:
            raise BrokerUnavailable(describe(e)) from e
        spool.mark_sent([row.seq for row in confirmed])
        total += len(confirmed)
        for row in confirmed:
            log.debug("outbox.published", message_id=row.message_id, document_id=row.document_id)
        failure = publisher.failure()
        if failure is not None:
            raise PublishRefused(
                f"{failure}: is {t.outbox_queue(config.agency)!r} bound to "
                f"{t.submit_exchange(config.agency)!r} and below its length limit?"
            )
    return total


class InboxConsumer:
    """Collects the deliveries one ``process_data_events`` hands over, then stores them as a
    batch and decides, in this one place, to ack or to reject (requeue=False) each.

    A batch is also stored as soon as its bodies reach ``max_bytes`` (``inbox_batch_bytes``),
    through ``on_full`` (by default :meth:`flush`; :class:`InboxLanes` makes it flush both lanes,
    urgent first), so a round of large documents is not gathered whole."""

    def __init__(
        self, channel: Any, writer: InboxWriter, max_bytes: int = 16 * 1024 * 1024
    ) -> None:
        self.channel = channel
        self.writer = writer
        self.max_bytes = max_bytes
        self.on_full: Callable[[], None] = self.flush
        self._batch: list[tuple[int, Delivery]] = []
        self._bytes = 0

    def on_message(self, _ch: Any, method: Any, properties: Any, body: bytes) -> None:
        delivery = Delivery(
            message_id=properties.message_id,
            message_type=properties.type,
            body=body,
            headers=properties.headers or {},
        )
        self._batch.append((method.delivery_tag, delivery))
        self._bytes += len(body)
        if self._bytes >= self.max_bytes:
            self.on_full()

    def flush(self) -> None:
        if not self._batch:
            return
        batch, self._batch, self._bytes = self._batch, [], 0
        actions = self.writer.handle_batch([d for _, d in batch])
        for (tag, _), action in zip(batch, actions, strict=True):
            if action is Action.ACK:
                self.channel.basic_ack(tag)
            else:
                self.channel.basic_reject(tag, requeue=False)


class InboxLanes:
    """The urgent inbox's consumer (when the hub has one) and the ordinary inbox's: what a round
    handed over is stored and acked urgent lane first."""

    def __init__(self, ordinary: InboxConsumer, urgent: InboxConsumer | None) -> None:
        self.consumers = [c for c in (urgent, ordinary) if c is not None]
        self.writer = ordinary.writer  # both lanes store through the one writer
        for consumer in self.consumers:
            consumer.on_full = self.flush  # a full batch: both lanes, urgent first

    def flush(self) -> None:
        for consumer in self.consumers:
            consumer.flush()


class BrokerLoop:
    """Runs in its own thread: connect, consume the inbox, drain the spool, until stopped."""

    #: How long one round waits for inbox deliveries before looking at the spool again.
    ROUND_SECONDS = 0.2

    def __init__(
        self,
        config: AdapterConfig,
        writer_factory: Callable[[Spool], InboxWriter],
        stop: threading.Event,
    ) -> None:
        self.config = config
        self.stop = stop
        self._writer_factory = writer_factory
        self._down_since: float | None = None
        self._attempts = 0
        self._no_urgent_lane_said = False
        self.connected = threading.Event()
        self.log = log.bind(agency=config.agency)

    # outage bookkeeping: one log line when it starts, one when it ends
    def _went_down(self, reason: str) -> None:
        self.connected.clear()
        if self._down_since is None:
            self._down_since = time.monotonic()
            self._attempts = 0
            self.log.warning("adapter.broker_down", url=self.config.safe_url(), reason=reason)

    def _came_back(self) -> None:
        self.connected.set()
        if self._down_since is not None:
            self.log.info(
                "adapter.broker_back",
                url=self.config.safe_url(),
                outage_seconds=round(time.monotonic() - self._down_since, 1),
                attempts=self._attempts,
            )
            self._down_since = None
        else:
            self.log.info("adapter.connected", url=self.config.safe_url())

    def _sleep(self, seconds: float) -> None:
        self.stop.wait(seconds)  # a stop request cuts the backoff short

    def _before_sleep(self, state: RetryCallState) -> None:
        self._attempts += 1
        exc = state.outcome.exception() if state.outcome else None
        self._went_down(str(exc))
        self.log.debug("adapter.reconnect_scheduled", attempt=state.attempt_number)

    def run(self) -> None:
        try:
            self._run()
        except Exception:
            self.log.exception("adapter.broker_loop_crashed")
            raise

    def _run(self) -> None:
        spool = Spool(self.config.spool_path)
        short_sessions = 0  # sessions that broke soon after they opened, in a row
        try:
            writer = self._writer_factory(spool)
            while not self.stop.is_set():
                retrying = Retrying(
                    stop=lambda _state: self.stop.is_set(),
                    wait=wait_exponential_jitter(
                        multiplier=self.config.reconnect_initial_seconds,
                        jitter=self.config.reconnect_initial_seconds,
                        max=self.config.reconnect_max_seconds,
                    ),
                    retry=retry_if_exception_type(BrokerUnavailable),
                    sleep=self._sleep,
                    before_sleep=self._before_sleep,
                    reraise=True,
                )
                try:
                    connection, publisher, consumer = retrying(self._open, writer)
                except BrokerUnavailable:
                    break  # stopping while the broker is down
                self._came_back()
                opened = time.monotonic()
                try:
                    self._serve(connection, publisher, consumer, spool)
                except BrokerUnavailable as e:
                    self._went_down(str(e))
                    # A session that keeps breaking right after it opens (a permission
                    # refused on publish, say) must not turn into a tight reconnect loop.
                    short_sessions = short_sessions + 1 if time.monotonic() - opened < 5 else 0
                    self._sleep(
                        min(
                            self.config.reconnect_max_seconds,
                            self.config.reconnect_initial_seconds * 2**short_sessions,
                        )
                    )
                except Exception:  # loop boundary: log, drop the connection, start again
                    self.log.exception("adapter.broker_loop_failed")
                    self.connected.clear()
                    self._sleep(self.config.reconnect_max_seconds)
                finally:
                    self._close(connection)
        finally:
            spool.close()

    def _open(self, writer: InboxWriter) -> tuple[pika.BlockingConnection, Publisher, InboxLanes]:
        """Connect, consume the urgent inbox on a channel of its own, open a confirm-mode
        channel and consume the inbox: one attempt."""
        connection = connect(self.config)
        try:
            urgent = self._consume_urgent(connection, writer)
            channel = connection.channel()
            publisher = Publisher(connection, channel, urgent_lane=urgent is not None)
            channel.basic_qos(prefetch_count=self.config.prefetch)

            consumer = InboxConsumer(channel, writer, self.config.inbox_batch_bytes)
            channel.basic_consume(t.inbox_queue(self.config.agency), consumer.on_message)
        except (pika.exceptions.AMQPError, OSError, BrokerUnavailable) as e:
            self._close(connection)
            if isinstance(e, BrokerUnavailable):
                raise
            raise BrokerUnavailable(describe(e)) from e
        return connection, publisher, InboxLanes(consumer, urgent)

    def _consume_urgent(
        self, connection: pika.BlockingConnection, writer: InboxWriter
    ) -> InboxConsumer | None:
        """The urgent inbox's consumer, or None when the hub has no urgent lane for this agency
        (provisioned before it: 403, the user may not read it, or 404, it is missing;
        ``relay setup`` adds it)."""
        queue = t.inbox_queue(self.config.agency, urgent=True)
        channel = connection.channel()
        try:
            channel.basic_qos(prefetch_count=self.config.prefetch)
            consumer = InboxConsumer(channel, writer, self.config.inbox_batch_bytes)
            channel.basic_consume(queue, consumer.on_message)
        except pika.exceptions.ChannelClosedByBroker as e:
            if e.reply_code not in (403, 404):
                raise
            if not self._no_urgent_lane_said:
                self._no_urgent_lane_said = True
                self.log.warning(
                    "adapter.no_urgent_lane",
                    queue=queue,
                    reason=describe(e),
                    action="urgent documents use the ordinary lane until the hub operator "
                    "runs 'lienthong relay setup'",
                )
            return None
        return consumer

    def _serve(
        self,
        connection: pika.BlockingConnection,
        publisher: Publisher,
        consumer: InboxLanes,
        spool: Spool,
    ) -> None:
        """Consume and publish until stopped; BrokerUnavailable when the connection breaks."""
        refused = 0  # publishes refused in a row (outbox full, unroutable)
        retry_publish_at = 0.0
        try:
            while not self.stop.is_set():
                connection.process_data_events(time_limit=self.ROUND_SECONDS)
                consumer.flush()
                consumer.writer.tick()  # issue 17: ask for chunks, finish assembled documents
                publisher.check_open()
                if time.monotonic() < retry_publish_at:
                    continue
                try:
                    sent = drain(self.config, spool, publisher, self.stop.is_set)
                except PublishRefused as e:
                    if refused == 0:
                        self.log.warning("outbox.publish_refused", reason=str(e))
                    refused += 1
                    retry_publish_at = time.monotonic() + min(
                        self.config.reconnect_max_seconds,
                        self.config.reconnect_initial_seconds * 2**refused,
                    )
                    continue
                if refused and sent:
                    self.log.info("outbox.publish_resumed", refused=refused)
                    refused = 0
                if sent:
                    self.log.info("outbox.sent", count=sent, unsent=spool.count_unsent())
            consumer.flush()  # store and ack what was already handed over before stopping
        except (pika.exceptions.AMQPError, OSError) as e:
            raise BrokerUnavailable(describe(e)) from e

    @staticmethod
    def _close(connection: pika.BlockingConnection) -> None:
        try:
            if connection.is_open:
                connection.close()
        except Exception:  # already gone: nothing to hand back, unacked deliveries requeue
            pass


def send_pending(config: AdapterConfig, spool: Spool) -> int:
    """Connect once, publish every unsent spool row, close; BrokerUnavailable if it fails."""
    connection = connect(config)
    try:
        publisher = Publisher(connection, connection.channel())
        return drain(config, spool, publisher)
    except (pika.exceptions.AMQPError, OSError) as e:
        raise BrokerUnavailable(describe(e)) from e
    finally:
        BrokerLoop._close(connection)
