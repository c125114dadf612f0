"""The AMQP seam (``relay.worker.amqp``) against the real broker and the installed pika.

These pin the pika internals the relay relies on: if a pika upgrade changes how a channel
dispatches deliveries, how a connection hands bytes to its transport or how it counts them,
these fail here rather than the relay misbehaving somewhere else.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pika
import pika.channel
import pika.spec
import pytest

from relay.config import Settings
from relay.worker.amqp import (
    Properties,
    RelayConnection,
    publish_frames,
    take_deliveries,
    unused_consumer_callback,
)

pytestmark = pytest.mark.integration

PROPS = Properties(
    content_type="application/json",
    headers={"x-lienthong-submission-id": "m-1", "người-gửi": "Văn phòng Chính phủ"},
    delivery_mode=2,
    correlation_id="c-1",
    message_id="m-1",
    timestamp=1_795_000_000,
    type="document",
    app_id="lienthong-relay",
)


@dataclass
class Seen:
    delivered: list[tuple[pika.spec.Basic.Deliver, pika.spec.BasicProperties, bytes]] = field(
        default_factory=list
    )
    confirms: list[pika.spec.Basic.Ack | pika.spec.Basic.Nack] = field(default_factory=list)
    returned: list[pika.spec.Basic.Return] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    error: BaseException | None = None


def _run(
    settings: Settings, start: Callable[[RelayConnection, pika.channel.Channel, str, Seen], None]
) -> Seen:
    """Open a RelayConnection, a confirm channel and a queue of its own, call ``start``, and
    run the ioloop until ``start``'s callbacks close the connection (or 20 s pass)."""
    seen = Seen()
    params = pika.URLParameters(settings.amqp_url)
    params.connection_attempts = 1
    queue = f"seam-{uuid.uuid4().hex[:8]}"

    def on_open(conn: Any) -> None:
        conn.channel(on_open_callback=on_channel)

    def on_channel(ch: pika.channel.Channel) -> None:
        ch.queue_declare(
            queue,
            exclusive=True,
            callback=lambda _f: ch.confirm_delivery(
                ack_nack_callback=lambda f: seen.confirms.append(f.method),
                callback=lambda _f: start(conn, ch, queue, seen),
            ),
        )
        ch.add_on_return_callback(lambda _c, method, _p, _b: seen.returned.append(method))

    def on_error(_conn: Any, err: BaseException) -> None:
        seen.error = err
        conn.ioloop.stop()

    conn = RelayConnection(
        params,
        on_open_callback=on_open,
        on_open_error_callback=on_error,
        on_close_callback=lambda _c, _r: conn.ioloop.stop(),
    )
    conn.ioloop.call_later(20, conn.close)
    conn.ioloop.start()
    assert seen.error is None, seen.error
    return seen


def test_send_publish_puts_on_the_wire_what_the_broker_delivers_and_confirms(
    env: Settings,
) -> None:
    body = bytes(range(256)) * 1200  # 300 KiB: several body frames at the default frame_max

    def start(conn: RelayConnection, ch: pika.channel.Channel, queue: str, seen: Seen) -> None:
        before = (conn.bytes_sent, conn.frames_sent)
        conn.send_publish(ch.channel_number, "", queue, body, PROPS)
        expected = publish_frames(
            ch.channel_number, "", queue, body, PROPS, mandatory=True, body_max=conn.body_max
        )
        seen.counters["bytes"] = conn.bytes_sent - before[0]
        seen.counters["expected_bytes"] = len(expected)
        seen.counters["frames"] = conn.frames_sent - before[1]
        seen.counters["body_max"] = conn.body_max

        def on_deliver(
            method: pika.spec.Basic.Deliver, props: pika.spec.BasicProperties, data: bytes
        ) -> None:
            seen.delivered.append((method, props, data))
            ch.basic_ack(method.delivery_tag)
            conn.close()

        take_deliveries(ch, on_deliver)
        ch.basic_consume(queue, unused_consumer_callback)

    seen = _run(env, start)
    assert len(seen.delivered) == 1, "the message went through take_deliveries"
    _method, props, data = seen.delivered[0]
    assert data == body
    assert props.message_id == "m-1" and props.type == "document"
    assert props.headers == dict(PROPS.headers or {})
    assert props.timestamp == 1_795_000_000 and props.delivery_mode == 2
    assert [type(m) for m in seen.confirms] == [pika.spec.Basic.Ack]
    # pika's counters account for what went out through the seam
    assert seen.counters["bytes"] == seen.counters["expected_bytes"]
    assert seen.counters["frames"] == 2 + -(-len(body) // seen.counters["body_max"])
    assert 4096 <= seen.counters["body_max"] < 1024 * 1024


def test_a_mandatory_publish_no_queue_takes_is_returned_before_its_confirm(
    env: Settings,
) -> None:
    def start(conn: RelayConnection, ch: pika.channel.Channel, _queue: str, seen: Seen) -> None:
        conn.send_publish(ch.channel_number, "", f"nobody-{uuid.uuid4().hex}", b"{}", PROPS)
        conn.ioloop.call_later(0.5, conn.close)

    seen = _run(env, start)
    assert [m.reply_code for m in seen.returned] == [312]  # NO_ROUTE
    assert [type(m) for m in seen.confirms] == [pika.spec.Basic.Ack]


def test_publishes_of_one_ioloop_turn_reach_the_broker_in_order(env: Settings) -> None:
    count = 200

    def start(conn: RelayConnection, ch: pika.channel.Channel, queue: str, seen: Seen) -> None:
        for i in range(count):
            conn.send_publish(ch.channel_number, "", queue, str(i).encode(), PROPS)

        def on_deliver(
            method: pika.spec.Basic.Deliver, props: pika.spec.BasicProperties, data: bytes
        ) -> None:
            seen.delivered.append((method, props, data))
            if len(seen.delivered) == count:
                ch.basic_ack(method.delivery_tag, multiple=True)
                conn.close()

        take_deliveries(ch, on_deliver)
        ch.basic_consume(queue, unused_consumer_callback)

    seen = _run(env, start)
    assert [int(d) for _m, _p, d in seen.delivered] == list(range(count))
    assert len(seen.confirms) >= 1 and all(
        isinstance(m, pika.spec.Basic.Ack) for m in seen.confirms
    )
