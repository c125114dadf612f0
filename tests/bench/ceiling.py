"""The ceiling: a bare forwarder, what the broker does for the relay's job without the relay.

It consumes the senders' outbox quorum queues and republishes each message, unparsed, to
``lienthong.deliver`` once per recipient (so into the recipients' inbox quorum queues), with
streaming publisher confirms; a consumed message is acked once all its copies are confirmed.
No database, no validation: the upper bound any relay on this broker can reach.

``ceiling+receipt`` (``receipts=True``) also publishes, for each message, the receipt the relay
sends its sender (``accepted``, one result per recipient, to the sender's inbox), and acks once
that is confirmed too: what the broker costs for the relay's whole job, without the relay. As
the relay does (``relay.worker.receipt_groups``), receipts to one sender go together as one
``lienthong.receipts/1`` message: those of the messages consumed within
:data:`RECEIPT_WAIT_S`, at most :data:`RECEIPT_GROUP` (the relay's batch size) at a time.
"""

from __future__ import annotations

import datetime as dt
import signal
import uuid
from multiprocessing.connection import Connection
from typing import Any

import pika
from pika.adapters.select_connection import SelectConnection

from schemas import (
    Receipt,
    ReceiptKind,
    RecipientOutcome,
    RecipientResult,
    encode_message,
    join_receipts,
)
from schemas import topology as t
from tests.bench.confirms import ConfirmTracker
from tests.bench.env import connection_parameters

#: Receipts to one sender wait this long for others to go with (about a relay batch's time)...
RECEIPT_WAIT_S = 0.005
#: ...and at most this many go together (the relay's default batch size).
RECEIPT_GROUP = 250


class Forwarder:
    def __init__(
        self,
        amqp_url: str,
        queues: list[str],
        recipients: list[str],
        prefetch: int,
        receipts: bool = False,
    ) -> None:
        self.amqp_url = amqp_url
        self.receipts = receipts
        self.results = [
            RecipientResult(code=r, outcome=RecipientOutcome.QUEUED, route_to=r) for r in recipients
        ]
        self.queues = queues
        self.recipients = recipients
        self.prefetch = prefetch
        self.confirms = ConfirmTracker()
        self.source_of: dict[int, list[int]] = {}  # publish seq -> consumed delivery tags
        self.waiting: dict[str, list[tuple[int, bytes]]] = {}  # sender -> (tag, receipt body)
        self.flush_due = False
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
        self.remaining[tag] = len(self.recipients) + (1 if self.receipts else 0)
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
            self.source_of[self.confirms.published()] = [tag]
        if self.receipts:
            self._add_receipt(tag, props)

    def _add_receipt(self, tag: int, props: Any) -> None:
        sender = props.user_id or ""
        receipt = Receipt(
            at=dt.datetime.now(dt.UTC),
            receipt_id=str(uuid.uuid4()),
            kind=ReceiptKind.ACCEPTED,
            in_reply_to=props.message_id,
            message_type=t.TYPE_DOCUMENT,
            sender=sender,
            recipients=self.results,
        )
        group = self.waiting.setdefault(sender, [])
        group.append((tag, encode_message(receipt)))
        if len(group) >= RECEIPT_GROUP:
            self._publish_receipts(sender, self.waiting.pop(sender))
        elif not self.flush_due:
            assert self.conn is not None
            self.flush_due = True
            self.conn.ioloop.call_later(RECEIPT_WAIT_S, self._flush_receipts)

    def _flush_receipts(self) -> None:
        self.flush_due = False
        waiting, self.waiting = self.waiting, {}
        for sender, group in waiting.items():
            self._publish_receipts(sender, group)

    def _publish_receipts(self, sender: str, group: list[tuple[int, bytes]]) -> None:
        lone = len(group) == 1
        out = pika.BasicProperties(
            message_id=str(uuid.uuid4()),
            type=t.TYPE_RECEIPT if lone else t.TYPE_RECEIPTS,
            delivery_mode=2,
            content_type="application/json",
        )
        body = group[0][1] if lone else join_receipts([b for _, b in group])
        key = t.deliver_routing_key(sender)
        self.channel.basic_publish(t.DELIVER_EXCHANGE, key, body, out, mandatory=True)
        self.source_of[self.confirms.published()] = [tag for tag, _ in group]

    def _on_confirm(self, frame: Any) -> None:
        m = frame.method
        for seq in self.confirms.settle(m.delivery_tag, m.multiple):
            for tag in self.source_of.pop(seq):
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
    amqp_url: str,
    queues: list[str],
    recipients: list[str],
    prefetch: int,
    receipts: bool,
    ready: Connection,
) -> None:
    """Process entry point; SIGTERM stops it."""
    Forwarder(amqp_url, queues, recipients, prefetch, receipts).run(ready)
