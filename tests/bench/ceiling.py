"""The ceiling: a bare forwarder, what the broker does for the relay's job without the relay.

It consumes the senders' outbox quorum queues and republishes each message, unparsed, to
``lienthong.deliver`` once per recipient (so into the recipients' inbox quorum queues), with
streaming publisher confirms; a consumed message is acked once all its copies are confirmed.
No database, no validation: the upper bound any relay on this broker can reach.
"""

from __future__ import annotations

import signal
from multiprocessing.connection import Connection
from typing import Any

import pika
from pika.adapters.select_connection import SelectConnection

from schemas import topology as t
from tests.bench.confirms import ConfirmTracker
from tests.bench.env import connection_parameters


class Forwarder:
    def __init__(
        self, amqp_url: str, queues: list[str], recipients: list[str], prefetch: int
    ) -> None:
        self.amqp_url = amqp_url
        self.queues = queues
        self.recipients = recipients
        self.prefetch = prefetch
        self.confirms = ConfirmTracker()
        self.source_of: dict[int, int] = {}  # publish seq -> consumed delivery tag
        self.remaining: dict[int, int] = {}  # consumed delivery tag -> copies unconfirmed
        self.channel: Any = None
        self.conn: SelectConnection | None = None
        self.stopping = False

    def run(self, ready: Connection) -> None:
        self.ready = ready
        self.conn = SelectConnection(
            connection_parameters(self.amqp_url),
            on_open_callback=lambda c: c.channel(on_open_callback=self._on_channel),
            on_open_error_callback=lambda c, e: c.ioloop.stop(),
            on_close_callback=lambda c, r: c.ioloop.stop(),
        )
        signal.signal(signal.SIGTERM, self._on_sigterm)
        self.conn.ioloop.start()

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        assert self.conn is not None
        self.conn.ioloop.add_callback_threadsafe(self._stop)

    def _stop(self) -> None:
        assert self.conn is not None
        if not self.stopping:
            self.stopping = True
            self.conn.close()

    def _on_channel(self, ch: Any) -> None:
        self.channel = ch
        ch.confirm_delivery(self._on_confirm)
        ch.basic_qos(prefetch_count=self.prefetch, callback=self._on_qos)

    def _on_qos(self, frame: Any) -> None:
        for q in self.queues:
            self.channel.basic_consume(q, self._on_message)
        self.ready.send(("ready",))

    def _on_message(self, ch: Any, method: Any, props: Any, body: bytes) -> None:
        tag = method.delivery_tag
        self.remaining[tag] = len(self.recipients)
        for r in self.recipients:
            out = pika.BasicProperties(
                message_id=f"{props.message_id}/{r}",
                correlation_id=props.message_id,
                type=props.type,
                delivery_mode=2,
                content_type=props.content_type,
                headers={
                    t.HEADER_SUBMISSION_ID: props.message_id,
                    t.HEADER_RECIPIENT: r,
                    t.HEADER_SENDER: props.user_id or "",
                },
            )
            key = t.deliver_routing_key(r)
            ch.basic_publish(t.DELIVER_EXCHANGE, key, body, out, mandatory=True)
            self.source_of[self.confirms.published()] = tag

    def _on_confirm(self, frame: Any) -> None:
        m = frame.method
        for seq in self.confirms.settle(m.delivery_tag, m.multiple):
            tag = self.source_of.pop(seq)
            left = self.remaining[tag] - 1
            if left:
                self.remaining[tag] = left
            else:
                del self.remaining[tag]
                if m.NAME == "Basic.Ack":
                    self.channel.basic_ack(tag)
                else:
                    self.channel.basic_nack(tag, requeue=True)


def run_ceiling(
    amqp_url: str, queues: list[str], recipients: list[str], prefetch: int, ready: Connection
) -> None:
    """Process entry point; SIGTERM stops it."""
    Forwarder(amqp_url, queues, recipients, prefetch).run(ready)
