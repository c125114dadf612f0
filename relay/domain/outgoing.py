"""What the relay publishes to an inbox: deterministic ids and message properties.

A retry, a resend and a republish after a crash all produce the same message id for the same
submission and recipient, so the receiving adapter recognises a copy it already stored.

Every id the hub creates (document copies, forwarded statuses, receipts) is derived in the
hub's own namespace from the *kind* of message, the *agency that submitted* the message it is
about, and that submission's id (issue 12 item 4). An agency chooses its own message ids, but
a copy of A's submission and a status forwarded for C can never share an id, even when C reuses
A's submission id; and an id that an agency reuses is its own submission (dedup is per sender).
Ids already stored in ``deliveries.message_id`` (derived before, by
:func:`legacy_delivery_message_id`) keep their meaning: copies are published again with the
stored id, never a recomputed one.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from json.encoder import encode_basestring

from schemas import join_receipts
from schemas import topology as t

#: Namespace of the ids the relay derived before issue 12 (uuid5); never change it.
LIENTHONG_NAMESPACE = uuid.UUID("6f0c1f7e-3b1a-5d8e-9a52-4c1e2b7d9f10")
#: Namespace of every id the relay derives now: names are JSON lists ``[kind, agency, ...]``,
#: so no part can run into the next; never change it.
HUB_NAMESPACE = uuid.UUID("3d4f5b2e-9c1a-5e7f-8b6d-2a0c4e6f8a1b")

#: Kinds of hub ids (the first element of the name).
KIND_DELIVERY = "delivery"
KIND_STATUS = "status"
KIND_RECEIPT = "receipt"
KIND_RECEIPTS = "receipts"


def _uuid5_str(namespace: uuid.UUID, name: str) -> str:
    """``str(uuid.uuid5(namespace, name))`` without the UUID objects (hot path)."""
    h = bytearray(hashlib.sha1(namespace.bytes + name.encode("utf-8")).digest()[:16])
    h[6] = (h[6] & 0x0F) | 0x50  # version 5
    h[8] = (h[8] & 0x3F) | 0x80  # RFC 4122 variant
    x = h.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def hub_id_name(kind: str, agency: str, *parts: str) -> str:
    """The name a hub id is derived from: ``json.dumps([kind, agency, *parts],
    ensure_ascii=False)``, built from the strings' JSON forms (a quarter of the time, and this
    runs for every copy and receipt)."""
    return "[" + ", ".join(map(encode_basestring, (kind, agency, *parts))) + "]"


def hub_id(kind: str, agency: str, *parts: str) -> str:
    """The id of a message the hub creates: ``kind``, the submitting ``agency``, then the rest."""
    return _uuid5_str(HUB_NAMESPACE, hub_id_name(kind, agency, *parts))


def delivery_message_id(submission_id: str, recipient: str, *, by: str) -> str:
    """The message id of the copy of ``by``'s submission ``submission_id`` for ``recipient``."""
    return hub_id(KIND_DELIVERY, by, submission_id, recipient)


def status_message_id(submission_id: str, addressee: str, *, by: str) -> str:
    """The message id of ``by``'s status ``submission_id`` forwarded to ``addressee``."""
    return hub_id(KIND_STATUS, by, submission_id, addressee)


def legacy_delivery_message_id(submission_id: str, recipient: str) -> str:
    """How copies were named before issue 12 (kept for reading old rows and old tests)."""
    return _uuid5_str(LIENTHONG_NAMESPACE, f"delivery/{submission_id}/{recipient}")


def receipt_message_id(submission_id: str, kind: str, recipient: str = "", *, by: str) -> str:
    """The message id of a receipt about ``by``'s ``submission_id`` (one per kind and
    recipient)."""
    return hub_id(KIND_RECEIPT, by, submission_id, kind, recipient)


def receipt_uuid(submission_id: str, kind: str, recipient: str = "", *, by: str) -> uuid.UUID:
    """``receipt_message_id`` as a UUID (the receipt's ``receipt_id``)."""
    return uuid.UUID(receipt_message_id(submission_id, kind, recipient, by=by))


@dataclass(slots=True)
class Outgoing:
    """One message for one inbox, independent of the AMQP client library."""

    route_to: str  # the connected agency whose inbox receives it (routing key)
    message_id: str
    message_type: str  # t.TYPE_DOCUMENT | t.TYPE_STATUS | t.TYPE_RECEIPT
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    correlation_id: str | None = None  # the submission's message_id
    #: an urgent document's copy goes to the recipient's urgent inbox (DESIGN §3)
    urgent: bool = False

    @property
    def routing_key(self) -> str:
        return t.deliver_routing_key(self.route_to, urgent=self.urgent)


def delivery(
    *,
    submission_id: str,
    sender: str,
    recipient: str,
    route_to: str,
    message_type: str,
    body: bytes,
    message_id: str | None = None,
    urgent: bool = False,
) -> Outgoing:
    """The copy of a document or status submission for one recipient.

    ``message_id``, when given, is the copy's id computed earlier or stored (a delivery made
    before issue 12 keeps its old id); otherwise it is derived from the kind, the submitting
    agency (``sender``), the submission and the recipient.
    """
    if message_id is None:
        kind = KIND_STATUS if message_type == t.TYPE_STATUS else KIND_DELIVERY
        message_id = hub_id(kind, sender, submission_id, recipient)
    return Outgoing(
        route_to=route_to,
        message_id=message_id,
        message_type=message_type,
        body=body,
        headers={
            t.HEADER_SUBMISSION_ID: submission_id,
            t.HEADER_RECIPIENT: recipient,
            t.HEADER_SENDER: sender,
        },
        correlation_id=submission_id,
        urgent=urgent,
    )


def receipts_together(route_to: str, receipts: list[Outgoing]) -> Outgoing:
    """One ``lienthong.receipts/1`` message carrying ``receipts`` (each already a
    ``lienthong.receipt/1`` body for ``route_to``'s inbox), their bodies joined as they are.

    Its id is derived from theirs, so the same receipts grouped the same way (a batch done
    again after a crash) are the same message; the adapter recognises each receipt by its own
    id whatever the grouping."""
    return Outgoing(
        route_to=route_to,
        message_id=hub_id(KIND_RECEIPTS, route_to, *(r.message_id for r in receipts)),
        message_type=t.TYPE_RECEIPTS,
        body=join_receipts([r.body for r in receipts]),
    )
