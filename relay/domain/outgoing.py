"""What the relay publishes to an inbox: deterministic ids and message properties.

A retry, a resend and a republish after a crash all produce the same message id for the same
submission and recipient, so the receiving adapter recognises a copy it already stored.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field

from schemas import topology as t

#: Namespace of every id the relay derives (uuid5); never change it.
LIENTHONG_NAMESPACE = uuid.UUID("6f0c1f7e-3b1a-5d8e-9a52-4c1e2b7d9f10")


_NAMESPACE_BYTES = LIENTHONG_NAMESPACE.bytes


def _uuid5_str(name: str) -> str:
    """``str(uuid.uuid5(LIENTHONG_NAMESPACE, name))`` without the UUID objects (hot path)."""
    h = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name.encode("utf-8")).digest()[:16])
    h[6] = (h[6] & 0x0F) | 0x50  # version 5
    h[8] = (h[8] & 0x3F) | 0x80  # RFC 4122 variant
    x = h.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def delivery_message_id(submission_id: str, recipient: str) -> str:
    """The message id of the copy of submission ``submission_id`` for ``recipient``."""
    return _uuid5_str(f"delivery/{submission_id}/{recipient}")


def receipt_message_id(submission_id: str, kind: str, recipient: str = "") -> str:
    """The message id of a receipt about ``submission_id`` (one per kind and recipient)."""
    return _uuid5_str(f"receipt/{submission_id}/{kind}/{recipient}")


def receipt_uuid(submission_id: str, kind: str, recipient: str = "") -> uuid.UUID:
    """``receipt_message_id`` as a UUID (the receipt's ``receipt_id``)."""
    return uuid.uuid5(LIENTHONG_NAMESPACE, f"receipt/{submission_id}/{kind}/{recipient}")


@dataclass(slots=True)
class Outgoing:
    """One message for one inbox, independent of the AMQP client library."""

    route_to: str  # the connected agency whose inbox receives it (routing key)
    message_id: str
    message_type: str  # t.TYPE_DOCUMENT | t.TYPE_STATUS | t.TYPE_RECEIPT
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    correlation_id: str | None = None  # the submission's message_id

    @property
    def routing_key(self) -> str:
        return t.deliver_routing_key(self.route_to)


def delivery(
    *,
    submission_id: str,
    sender: str,
    recipient: str,
    route_to: str,
    message_type: str,
    body: bytes,
    message_id: str | None = None,
) -> Outgoing:
    """The copy of a document or status submission for one recipient.

    ``message_id``, when given, must be ``delivery_message_id(submission_id, recipient)``
    computed earlier (it saves computing it twice on the hot path).
    """
    return Outgoing(
        route_to=route_to,
        message_id=message_id or delivery_message_id(submission_id, recipient),
        message_type=message_type,
        body=body,
        headers={
            t.HEADER_SUBMISSION_ID: submission_id,
            t.HEADER_RECIPIENT: recipient,
            t.HEADER_SENDER: sender,
        },
        correlation_id=submission_id,
    )
