"""The AMQP seam: every pika internal the relay relies on, in this one module.

The relay's hot path needs four things pika does not offer as public API:

- :class:`RelayConnection` gathers the frames of one ioloop turn into one ``send()``
  (``SelectConnection._adapter_emit_data``, ``_transport``) and publishes from bytes encoded here
  (:func:`publish_frames`), keeping pika's counters (``bytes_sent``, ``frames_sent``) and its
  negotiated body frame size (``_body_max_length``) right;
- :func:`take_deliveries` replaces a channel's ``_on_deliver``, so a message that arrives for a
  consumer being cancelled is handled, not requeued behind the outbox's later messages;
- :func:`publish_frames` encodes ``basic.publish`` to the bytes pika would send;
- :func:`read_in_large_chunks` makes pika read the socket 128 KiB at a time, not 4 KiB.

Nothing else in the relay touches a pika name that starts with an underscore; a pika upgrade
breaks this module, loudly, in ``tests/unit/test_publish_frames.py`` (against pika itself) and
``tests/integration/test_amqp_seam_broker.py`` (against the real broker). pika is pinned below 2.

Publish encoding: pika builds a publish from several objects (the method, a
``BasicProperties``, a frame per part) and marshals each generically; for the relay that was a
fifth of its CPU, as every document costs two publishes (the copy and the receipt). The
relay's messages use a handful of properties whose layout is fixed by the specification
(section 4.2.3 and the ``basic`` class), so they are encoded here directly, to the same bytes
pika would send; a test compares the two.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pika
import pika.channel
import pika.frame
import pika.spec
from pika.adapters.utils import io_services_utils

FRAME_METHOD = 1
FRAME_HEADER = 2
FRAME_BODY = 3
FRAME_END = b"\xce"
#: type, channel and size before a frame's payload, plus the end octet after it
FRAME_OVERHEAD = 8

_BASIC = 60
_PUBLISH = 40

# Basic property flags, in the order their values follow the flags (AMQP 0-9-1 ``basic``).
_CONTENT_TYPE = 1 << 15
_HEADERS = 1 << 13
_DELIVERY_MODE = 1 << 12
_CORRELATION_ID = 1 << 10
_MESSAGE_ID = 1 << 7
_TIMESTAMP = 1 << 6
_TYPE = 1 << 5
_APP_ID = 1 << 3

_FRAME_START = struct.Struct(">BHI")
_METHOD_ID = struct.Struct(">HHH")  # class, method, reserved (ticket)
_HEADER_START = struct.Struct(">HHQH")  # class, weight, body size, property flags


@dataclass(frozen=True, slots=True)
class Properties:
    """The message properties the relay sets (``None``: not sent)."""

    content_type: str | None = None
    headers: Mapping[str, str] | None = None
    delivery_mode: int | None = None
    correlation_id: str | None = None
    message_id: str | None = None
    timestamp: int | None = None
    type: str | None = None
    app_id: str | None = None


def _shortstr(value: str) -> bytes:
    raw = value.encode("utf-8")
    if len(raw) > 255:
        raise ValueError(f"AMQP short string longer than 255 bytes: {value[:40]!r}…")
    return bytes((len(raw),)) + raw


#: Names that recur in every publish (exchange, agency codes, property values, header keys).
_name = functools.lru_cache(maxsize=8192)(_shortstr)


def _table(headers: Mapping[str, str]) -> bytes:
    """A field table of string values (type ``S``, long strings), as pika encodes them."""
    parts = []
    for key, value in headers.items():
        raw = value.encode("utf-8")
        parts.append(_name(key) + b"S" + len(raw).to_bytes(4, "big") + raw)
    body = b"".join(parts)
    return len(body).to_bytes(4, "big") + body


def _frame(kind: int, channel: int, payload: bytes) -> bytes:
    return _FRAME_START.pack(kind, channel, len(payload)) + payload + FRAME_END


#: A body at least this large is sent as views of the message's own bytes, never copied into
#: a frame buffer: a large document fanned out to many inboxes costs its size once, not once
#: per recipient (a 20 MB document to 95 agencies would otherwise be about 2 GB).
ZERO_COPY_BYTES = 64 * 1024

#: Small pieces are joined into buffers of about this size: a batch of a 2 KiB document to 95
#: agencies, 500 times over, is 128 MB of frames, which one join would have copied whole.
EMIT_BYTES = 256 * 1024

#: One piece of what goes on the wire: bytes, or a view of a message body.
Piece = bytes | memoryview


def publish_frames(
    channel: int,
    exchange: str,
    routing_key: str,
    body: bytes,
    props: Properties,
    *,
    mandatory: bool = False,
    body_max: int = 131072 - FRAME_OVERHEAD,
) -> bytes:
    """The method, header and body frames of one ``basic.publish``, concatenated.

    ``body_max`` is the largest body frame payload: the connection's negotiated ``frame_max``
    less :data:`FRAME_OVERHEAD`.
    """
    return b"".join(
        publish_pieces(
            channel, exchange, routing_key, body, props, mandatory=mandatory, body_max=body_max
        )
    )


def publish_pieces(
    channel: int,
    exchange: str,
    routing_key: str,
    body: bytes,
    props: Properties,
    *,
    mandatory: bool = False,
    body_max: int = 131072 - FRAME_OVERHEAD,
) -> list[Piece]:
    """:func:`publish_frames` as pieces to send in order: a body of :data:`ZERO_COPY_BYTES` or
    more is given as views of ``body`` between the frame bytes, so it is not copied."""
    method = (
        _METHOD_ID.pack(_BASIC, _PUBLISH, 0)
        + _name(exchange)
        + _name(routing_key)
        + (b"\x01" if mandatory else b"\x00")
    )
    flags = 0
    values = []
    if props.content_type is not None:
        flags |= _CONTENT_TYPE
        values.append(_name(props.content_type))
    if props.headers is not None:
        flags |= _HEADERS
        values.append(_table(props.headers))
    if props.delivery_mode is not None:
        flags |= _DELIVERY_MODE
        values.append(bytes((props.delivery_mode,)))
    if props.correlation_id is not None:
        flags |= _CORRELATION_ID
        values.append(_shortstr(props.correlation_id))
    if props.message_id is not None:
        flags |= _MESSAGE_ID
        values.append(_shortstr(props.message_id))
    if props.timestamp is not None:
        flags |= _TIMESTAMP
        values.append(props.timestamp.to_bytes(8, "big"))
    if props.type is not None:
        flags |= _TYPE
        values.append(_name(props.type))
    if props.app_id is not None:
        flags |= _APP_ID
        values.append(_name(props.app_id))
    header = _HEADER_START.pack(_BASIC, 0, len(body), flags) + b"".join(values)
    head = _frame(FRAME_METHOD, channel, method) + _frame(FRAME_HEADER, channel, header)
    size = len(body)
    if size < ZERO_COPY_BYTES:
        if not body:
            return [head]
        if size <= body_max:
            return [head + _frame(FRAME_BODY, channel, body)]
    pieces: list[Piece] = [head]
    view = memoryview(body)
    for start in range(0, size, body_max):
        chunk = view[start : start + body_max]
        start_of_frame = _FRAME_START.pack(FRAME_BODY, channel, len(chunk))
        if size < ZERO_COPY_BYTES:
            pieces.append(start_of_frame + bytes(chunk) + FRAME_END)
        else:
            pieces.extend((start_of_frame, chunk, FRAME_END))
    return pieces


#: Bytes one socket read takes. pika reads 4 KiB at a time and appends each read to its frame
#: buffer (a copy of the buffer each time): a 1.4 MB document cost about 350 reads and tens of
#: MB of copying, a fifth of the relay's samples with 1 MiB attachments.
RECV_BYTES = 128 * 1024


def read_in_large_chunks() -> None:
    """Have pika's asynchronous transports read :data:`RECV_BYTES` at a time (a class
    attribute of pika's transport; every connection of this process is affected)."""
    io_services_utils._AsyncTransportBase._MAX_RECV_BYTES = RECV_BYTES


#: What the relay's consume channel hands each delivery to.
DeliveryHandler = Callable[[pika.spec.Basic.Deliver, pika.spec.BasicProperties, bytes], None]


class RelayConnection(pika.SelectConnection):  # type: ignore[misc]
    """A ``SelectConnection`` that hands the socket one chunk per ioloop turn, and publishes
    without building pika's per-message objects (:meth:`send_publish`).

    pika gives its transport every frame separately (a publish is three) and the transport
    sends each with a ``send()`` of its own; a batch of publishes and acks made in one turn
    of the ioloop here becomes one buffer, so the kernel sees one call instead of thousands.
    Order is kept: everything goes through ``_adapter_emit_data``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._gathered: list[Piece] = []
        read_in_large_chunks()
        super().__init__(*args, **kwargs)

    def _adapter_emit_data(self, data: bytes) -> None:
        if not self._gathered:
            self.ioloop.call_later(0, self._emit_gathered)
        self._gathered.append(data)

    @property
    def body_max(self) -> int:
        """The largest body frame payload: the negotiated ``frame_max`` less the overhead."""
        return int(self._body_max_length)

    def send_publish(
        self,
        channel: int,
        exchange: str,
        routing_key: str,
        body: bytes,
        props: Properties,
        *,
        mandatory: bool = True,
    ) -> None:
        """``basic.publish`` on ``channel``: the bytes pika's ``Channel.basic_publish`` sends,
        encoded in one pass. Confirms and returns arrive through the channel as usual."""
        body_max = self.body_max
        pieces = publish_pieces(
            channel, exchange, routing_key, body, props, mandatory=mandatory, body_max=body_max
        )
        if not self._gathered:
            self.ioloop.call_later(0, self._emit_gathered)
        self._gathered.extend(pieces)
        self.bytes_sent += sum(len(p) for p in pieces)
        self.frames_sent += 2 + -(-len(body) // body_max)

    def _emit_gathered(self) -> None:
        """Small pieces are joined into one buffer; a body view goes to the transport as it
        is (the socket sends from it; nothing copies the document)."""
        pieces, self._gathered = self._gathered, []
        if not pieces or self._transport is None:  # None once the connection is gone
            return
        emit = super()._adapter_emit_data
        small: list[Piece] = []
        held = 0
        for piece in pieces:
            if len(piece) >= ZERO_COPY_BYTES:
                if small:
                    emit(b"".join(small))
                    small, held = [], 0
                emit(piece)
            else:
                small.append(piece)
                held += len(piece)
                if held >= EMIT_BYTES:
                    emit(b"".join(small))
                    small, held = [], 0
        if small:
            emit(b"".join(small))


def take_deliveries(channel: pika.channel.Channel, handler: DeliveryHandler) -> None:
    """Every ``basic.deliver`` on ``channel`` goes to ``handler``, whatever its consumer.

    pika's own dispatch (``Channel._on_deliver``) rejects with requeue a message that arrives
    for a consumer it was asked to cancel, which puts it behind the outbox's later messages;
    the relay handles it like any other, so each outbox stays in order when intake pauses or
    an agency is released. Consume with :func:`unused_consumer_callback` as the callback.
    """

    def on_deliver(
        method_frame: pika.frame.Method, header_frame: pika.frame.Header, body: bytes
    ) -> None:
        handler(method_frame.method, header_frame.properties, body)

    channel._on_deliver = on_deliver


def unused_consumer_callback(*_args: Any) -> None:
    """The ``on_message_callback`` pika requires of ``basic_consume`` on a channel whose
    deliveries go through :func:`take_deliveries`; it is never called."""
    raise AssertionError("deliveries go through take_deliveries")
