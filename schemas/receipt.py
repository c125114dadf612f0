"""``lienthong.receipt/1``: the relay's answer to a submission."""

from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum
from typing import Final, Literal

from pydantic import Field

from schemas.agency_code import AgencyCode
from schemas.common import WireModel

RECEIPT_SCHEMA: Final = "lienthong.receipt/1"


class ReceiptKind(StrEnum):
    ACCEPTED = "accepted"  # the submission was recorded; see each recipient's outcome
    REJECTED = "rejected"  # the submission was refused; ``reason`` says why
    DELIVERY_FAILED = "delivery_failed"  # a recipient could not be reached after every attempt
    OVERDUE = "overdue"  # a recipient's 01 or 03 is past its Decree 30 due time (once each)


class RecipientOutcome(StrEnum):
    QUEUED = "queued"  # routed to the inbox of ``route_to``
    UNKNOWN = "unknown_recipient"  # no such agency in the directory
    SUSPENDED = "suspended"  # the agency (or its host) is suspended
    NOT_ROUTABLE = "not_routable"  # known, but no connected agency receives for it


class RecipientResult(WireModel):
    code: str  # as addressed by the sender, kept even when it is not a valid code
    outcome: RecipientOutcome
    route_to: AgencyCode | None = None
    reason: str | None = None


class Receipt(WireModel):
    schema_: Literal["lienthong.receipt/1"] = Field(RECEIPT_SCHEMA, alias="schema")
    receipt_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    kind: ReceiptKind
    in_reply_to: str = Field(description="message_id of the submission this answers")
    message_type: Literal["document", "status"] | None = None
    document_id: str | None = None
    sender: str | None = None
    recipients: list[RecipientResult] = Field(default_factory=list)
    recipient: str | None = Field(
        None, description="for delivery_failed: who was not reached; for overdue: who is late"
    )
    status_code: str | None = Field(None, description="for overdue: the status due (01 or 03)")
    due_at: dt.datetime | None = Field(None, description="for overdue: when it was due")
    duplicate_of: str | None = Field(
        None,
        description="for accepted: the DocumentId of an earlier document with the same number, "
        "notation and date (Decree 30, Phụ lục VI III.1.h); delivered all the same",
    )
    reason: str | None = None
    at: dt.datetime = Field(default_factory=lambda: dt.datetime.now(dt.UTC))


RECEIPTS_SCHEMA: Final = "lienthong.receipts/1"


class Receipts(WireModel):
    """Several receipts for one agency in one message (AMQP ``type`` ``receipts``).

    The relay answers the submissions of one batch together: one message per agency instead of
    one per submission, which halves what the broker does for small documents. Each element is
    the receipt that would have come alone, with its own ``receipt_id``; a consumer handles
    each as if it had (and recognises a receipt it already has by that id, however the relay
    grouped them). A lone receipt still comes as ``lienthong.receipt/1``.
    """

    schema_: Literal["lienthong.receipts/1"] = Field(RECEIPTS_SCHEMA, alias="schema")
    receipts: list[Receipt] = Field(min_length=1)


_RECEIPTS_HEAD: Final = b'{"schema":"lienthong.receipts/1","receipts":['


def join_receipts(bodies: list[bytes]) -> bytes:
    """The ``lienthong.receipts/1`` body of receipts already encoded, without decoding them."""
    return _RECEIPTS_HEAD + b",".join(bodies) + b"]}"
