"""The adapter's RabbitMQ side: drain the spool to ``lienthong.submit``, consume the inbox.

One thread owns the connection (pika's BlockingConnection is not thread-safe). It reconnects
forever with exponential backoff and jitter (tenacity) until asked to stop, and logs each
outage once (``adapter.broker_down`` … ``adapter.broker_back``), not once per attempt.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pika
import pika.exceptions
import structlog
from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_exponential_jitter

from adapters.config import AdapterConfig
from adapters.inbox import Action, Delivery, InboxWriter
from adapters.spool import Spool
from schemas import topology as t

log = structlog.get_logger()


class BrokerUnavailable(Exception):
    """RabbitMQ cannot be reached or dropped the connection; try again later."""


class PublishRefused(BrokerUnavailable):
    """The broker nacked or returned a publish (outbox full, queue missing); retried later."""


def connection_parameters(config: AdapterConfig) -> pika.URLParameters:
    params = pika.URLParameters(config.amqp_url)
    user, password = config.credentials()
    params.credentials = pika.PlainCredentials(user, password)
    params.heartbeat = config.heartbeat_seconds
    params.connection_attempts = 1
    params.socket_timeout = config.connect_timeout_seconds
    params.stack_timeout = config.connect_timeout_seconds * 2
    params.blocked_connection_timeout = 60
    params.client_properties = {"connection_name": f"lienthong-adapter {config.agency}"}
    return params


def connect(config: AdapterConfig) -> pika.BlockingConnection:
    """One connection attempt; BrokerUnavailable (with a reason, no secrets) if it fails."""
    try:
        return pika.BlockingConnection(connection_parameters(config))
    except (pika.exceptions.AMQPError, OSError) as e:
        raise BrokerUnavailable(f"{config.safe_url()}: {type(e).__name__} {e}".strip()) from e


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


def drain(
    config: AdapterConfig,
    spool: Spool,
    channel: Any,
    should_stop: Callable[[], bool] = lambda: False,
) -> int:
    """Publish unsent spool rows in order, with confirms, marking them sent; returns how many.

    Rows confirmed before a failure are marked sent; the rest stay in the spool (a row sent
    again after a crash carries the same message_id, which the relay recognises).
    """
    total = 0
    while not should_stop():
        rows = spool.unsent(config.publish_batch)
        if not rows:
            break
        confirmed: list[int] = []
        try:
            for row in rows:
                channel.basic_publish(
                    exchange=t.SUBMIT_EXCHANGE,
                    routing_key=t.submit_routing_key(config.agency),
                    body=row.body,
                    properties=publish_properties(config, row.message_id, row.message_type),
                    mandatory=True,
                )
                confirmed.append(row.seq)
                log.debug(
                    "outbox.published", message_id=row.message_id, document_id=row.document_id
                )
        except pika.exceptions.UnroutableError as e:
            raise PublishRefused(
                "the broker returned a submission as unroutable: is "
                f"{t.outbox_queue(config.agency)!r} bound to {t.SUBMIT_EXCHANGE!r}? ({e})"
            ) from e
        except pika.exceptions.NackError as e:
            raise PublishRefused(f"the broker refused a submission (outbox full?) ({e})") from e
        except (pika.exceptions.AMQPError, OSError) as e:
            raise BrokerUnavailable(f"{type(e).__name__} {e}".strip()) from e
        finally:
            spool.mark_sent(confirmed)
            total += len(confirmed)
    return total


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
                    connection, channel = retrying(self._open, writer)
                except BrokerUnavailable:
                    break  # stopping while the broker is down
                self._came_back()
                opened = time.monotonic()
                try:
                    self._serve(connection, channel, spool)
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

    def _open(self, writer: InboxWriter) -> tuple[pika.BlockingConnection, Any]:
        """Connect, open a confirm-mode channel and consume the inbox: one attempt."""
        connection = connect(self.config)
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            channel.basic_qos(prefetch_count=self.config.prefetch)

            def on_message(ch: Any, method: Any, properties: Any, body: bytes) -> None:
                delivery = Delivery(
                    message_id=properties.message_id,
                    message_type=properties.type,
                    body=body,
                    headers=properties.headers or {},
                )
                # The one place where a delivery is acked or handed back.
                if writer.handle(delivery) is Action.ACK:
                    ch.basic_ack(method.delivery_tag)
                else:
                    ch.basic_reject(method.delivery_tag, requeue=False)

            channel.basic_consume(t.inbox_queue(self.config.agency), on_message)
        except (pika.exceptions.AMQPError, OSError) as e:
            self._close(connection)
            raise BrokerUnavailable(f"{type(e).__name__} {e}".strip()) from e
        return connection, channel

    def _serve(self, connection: pika.BlockingConnection, channel: Any, spool: Spool) -> None:
        """Consume and publish until stopped; BrokerUnavailable when the connection breaks."""
        refused = 0  # publishes refused in a row (outbox full, unroutable)
        retry_publish_at = 0.0
        try:
            while not self.stop.is_set():
                connection.process_data_events(time_limit=self.ROUND_SECONDS)
                if time.monotonic() < retry_publish_at:
                    continue
                try:
                    sent = drain(self.config, spool, channel, self.stop.is_set)
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
        except (pika.exceptions.AMQPError, OSError) as e:
            raise BrokerUnavailable(f"{type(e).__name__} {e}".strip()) from e

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
        channel = connection.channel()
        channel.confirm_delivery()
        return drain(config, spool, channel)
    except (pika.exceptions.AMQPError, OSError) as e:
        raise BrokerUnavailable(f"{type(e).__name__} {e}".strip()) from e
    finally:
        BrokerLoop._close(connection)
