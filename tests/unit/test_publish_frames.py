"""The relay's own publish encoding sends exactly the bytes pika would."""

from __future__ import annotations

import math

import pika.frame
import pika.spec
import pytest

from relay.worker.amqp import (
    FRAME_OVERHEAD,
    ZERO_COPY_BYTES,
    Properties,
    publish_frames,
    publish_pieces,
)


def pika_bytes(
    channel: int,
    exchange: str,
    key: str,
    body: bytes,
    props: pika.spec.BasicProperties,
    mandatory: bool,
    body_max: int,
) -> bytes:
    """What ``pika.connection.Connection._send_message`` puts on the wire."""
    method = pika.spec.Basic.Publish(exchange=exchange, routing_key=key, mandatory=mandatory)
    out = [
        pika.frame.Method(channel, method).marshal(),
        pika.frame.Header(channel, len(body), props).marshal(),
    ]
    for i in range(math.ceil(len(body) / body_max)):
        out.append(pika.frame.Body(channel, body[i * body_max : (i + 1) * body_max]).marshal())
    return b"".join(out)


FULL = {
    "content_type": "application/json",
    "headers": {"x-lienthong-submission-id": "m-1", "x-lienthong-recipient": "000.00.00.H29"},
    "delivery_mode": 2,
    "correlation_id": "6b0c1f7e-3b1a-5d8e-9a52-4c1e2b7d9f10",
    "message_id": "0f0c1f7e-3b1a-5d8e-9a52-4c1e2b7d9f11",
    "timestamp": 1_795_000_000,
    "type": "document",
    "app_id": "lienthong-relay",
}


@pytest.mark.parametrize(
    "fields",
    [
        FULL,
        {k: v for k, v in FULL.items() if k not in ("headers", "correlation_id")},
        {"message_id": "x"},
        {},
        {**FULL, "headers": {"người-gửi": "Văn phòng Chính phủ"}},  # non-ASCII both sides
        {**FULL, "headers": {}},
    ],
)
@pytest.mark.parametrize("mandatory", [True, False])
def test_publish_frames_equal_pikas_for_the_relays_properties(
    fields: dict[str, object], mandatory: bool
) -> None:
    body = '{"schema": "lienthong.document/1", "subject": "Về việc"}'.encode()
    ours = publish_frames(
        3, "lienthong.deliver", "000.00.00.H29", body, Properties(**fields), mandatory=mandatory
    )
    theirs = pika_bytes(
        3,
        "lienthong.deliver",
        "000.00.00.H29",
        body,
        pika.spec.BasicProperties(**fields),
        mandatory,
        131072 - FRAME_OVERHEAD,
    )
    assert ours == theirs


@pytest.mark.parametrize("size", [0, 1, 4096 - FRAME_OVERHEAD, 4096 - FRAME_OVERHEAD + 1, 50_000])
def test_bodies_are_split_at_the_negotiated_frame_size_like_pika(size: int) -> None:
    body = bytes(range(256)) * (size // 256) + bytes(size % 256)
    body_max = 4096 - FRAME_OVERHEAD
    props = Properties(**FULL)  # type: ignore[arg-type]
    ours = publish_frames(1, "", "q", body, props, body_max=body_max)
    theirs = pika_bytes(1, "", "q", body, pika.spec.BasicProperties(**FULL), False, body_max)
    assert ours == theirs


def test_a_short_string_longer_than_255_bytes_is_refused() -> None:
    with pytest.raises(ValueError, match="longer than 255 bytes"):
        publish_frames(1, "lienthong.deliver", "k" * 256, b"", Properties())


def test_the_pika_internals_the_seam_overrides_or_reads_exist_in_the_installed_pika() -> None:
    """A pika upgrade that renames one of them fails here, not silently in the relay."""
    import inspect

    import pika.channel
    import pika.connection

    from relay.worker.amqp import RelayConnection

    base = pika.connection.Connection
    # overridden: pika must still route every outgoing byte through this method
    assert "_adapter_emit_data" in vars(base)
    assert RelayConnection._adapter_emit_data is not base._adapter_emit_data
    send = inspect.getsource(base._output_marshaled_frames)
    assert "self._adapter_emit_data(" in send and "self.bytes_sent +=" in send
    assert "self.frames_sent +=" in send
    # read: the negotiated body frame size, set when the connection is tuned
    assert "self._body_max_length = " in inspect.getsource(base._on_connection_tune)
    # replaced per channel: pika dispatches every basic.deliver through self._on_deliver
    assert list(inspect.signature(pika.channel.Channel._on_deliver).parameters) == [
        "self",
        "method_frame",
        "header_frame",
        "body",
    ]
    assert "self._on_deliver(" in inspect.getsource(pika.channel.Channel._handle_content_frame)


@pytest.mark.parametrize("size", [ZERO_COPY_BYTES - 1, ZERO_COPY_BYTES, 20 * 1024 * 1024 + 3])
def test_a_large_body_is_sent_as_views_of_itself_not_copied(size: int) -> None:
    body = bytes(size)
    pieces = publish_pieces(1, "lienthong.deliver", "k", body, Properties(message_id="m"))
    copied = sum(len(p) for p in pieces if not isinstance(p, memoryview))
    assert b"".join(pieces) == publish_frames(
        1, "lienthong.deliver", "k", body, Properties(message_id="m")
    )
    if size >= ZERO_COPY_BYTES:
        assert all(p.obj is body for p in pieces if isinstance(p, memoryview))
        assert copied < 1024 + 9 * len(pieces), "only frame headers are new bytes"
    else:
        assert copied > size


def test_pika_reads_the_socket_in_large_chunks_for_the_relay() -> None:
    from pika.adapters.utils import io_services_utils

    from relay.worker.amqp import RECV_BYTES, read_in_large_chunks

    transport = io_services_utils._AsyncTransportBase
    assert transport._MAX_RECV_BYTES in (4096, RECV_BYTES)  # the attribute pika reads with
    read_in_large_chunks()
    assert transport._MAX_RECV_BYTES == RECV_BYTES
