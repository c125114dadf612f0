"""What a federation link does with one message from one hub's inbox (pure rules).

The link is agency ``agency`` on both hubs. What the relay of one hub puts in that agency's
inbox is either *forwarded* to the other hub (a document or a status: submitted there as
``agency``, body unchanged, so the original sender travels in the message and the other hub
checks it like any submission), *answered* (a receipt of the other hub refusing recipients
becomes a status 02 Từ chối from each refused recipient, so the sender sees a refusal it can
read), or *dropped* with a log line (receipts about what the link submitted, directory
snapshots).

Ids are derived, never drawn: a message redelivered after a cut or a restart is forwarded with
the same id, and the hub it goes to records a submission once per (submitting agency, id). The
copies one submission makes for several recipients served by the link carry one id, so the
other hub gets the submission once and routes it to all of them itself.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from relay.domain.outgoing import hub_id
from schemas import (
    Organization,
    Receipt,
    ReceiptKind,
    RecipientOutcome,
    ResponseFor,
    Status,
    split_receipts,
)
from schemas import topology as t
from schemas.envelope import encode_message

#: Id kinds of what a link submits (the first element of :func:`hub_id`'s name).
KIND_UPSTREAM: Final = "federation-up"  # forwarded from this hub to the hub above
KIND_DOWNSTREAM: Final = "federation-down"  # forwarded from the hub above into this one
KIND_REFUSAL: Final = "federation-refusal"  # a 02 standing for a recipient the other hub refused

#: The status a refused recipient is reported with (Từ chối).
REFUSED: Final = "02"

#: Directions, as seen from the hub that runs the link.
UP: Final = "up"
DOWN: Final = "down"


@dataclass(frozen=True)
class Incoming:
    """One message from the link's inbox on one hub."""

    message_id: str | None
    message_type: str | None
    headers: Mapping[str, object]
    body: bytes


@dataclass(frozen=True)
class Forward:
    """One message to submit, as the link's agency, to the other hub."""

    message_id: str
    message_type: str
    body: bytes


@dataclass(frozen=True)
class Dropped:
    """Nothing to forward; ``event`` and ``detail`` say why (logged by the link)."""

    event: str
    detail: str


@dataclass(frozen=True)
class Forwarded:
    """A document submission the link forwarded, as the hub it came from recorded it."""

    sender: str  # the document's sender (edXML From), who is told of a refusal
    recipients: Sequence[str]  # the codes this hub routed to the link


#: Given a receipt for what the link submitted: the submission it answers (None when the link
#: did not forward it from this hub: nothing to answer for).
RecipientsOf = Callable[[Receipt], Forwarded | None]


def forward_id(direction: str, headers: Mapping[str, object], message_id: str | None) -> str:
    """The id a forwarded copy is submitted under: one per submission of the hub it came from
    (the submitting agency and its id, from the relay's headers)."""
    kind = KIND_UPSTREAM if direction == UP else KIND_DOWNSTREAM
    submitted_by = str(headers.get(t.HEADER_SENDER) or "")
    submission = str(headers.get(t.HEADER_SUBMISSION_ID) or message_id or "")
    return hub_id(kind, submitted_by, submission)


def handle(
    direction: str, message: Incoming, recipients_of: RecipientsOf
) -> list[Forward] | Dropped:
    """What to submit to the other hub for ``message`` (from the inbox on the ``direction``'s
    source side: this hub's for ``UP``, the remote hub's for ``DOWN``)."""
    kind = message.message_type
    if kind in (t.TYPE_DOCUMENT, t.TYPE_STATUS):
        mid = forward_id(direction, message.headers, message.message_id)
        return [Forward(message_id=mid, message_type=kind, body=message.body)]
    if kind == t.TYPE_RECEIPTS:
        # the hub's receipts of one batch together: each answered as if it had come alone
        try:
            receipts = split_receipts(message.body)
        except ValueError as e:
            return Dropped("federation.bad_receipt", f"receipts {message.message_id}: {e}")
        forwards: list[Forward] = []
        for receipt in receipts:
            answered = _answer(receipt, recipients_of)
            if not isinstance(answered, Dropped):
                forwards.extend(answered)
        if not forwards:
            return Dropped("federation.receipt", f"{len(receipts)} receipts: nothing to answer")
        return forwards
    if kind != t.TYPE_RECEIPT:
        return Dropped("federation.ignored", f"a message of type {kind!r} is not forwarded")
    try:
        receipt = Receipt.model_validate_json(message.body)
    except ValueError as e:
        return Dropped("federation.bad_receipt", f"receipt {message.message_id}: {e}")
    return _answer(receipt, recipients_of)


def _answer(receipt: Receipt, recipients_of: RecipientsOf) -> list[Forward] | Dropped:
    """The refusals to send back for one receipt of this hub (the recipients the other hub's
    submission named that this hub did not take), or why there are none."""
    if receipt.message_type != t.TYPE_DOCUMENT:
        # about a status or a directory push: nobody to answer for; the log says how it went
        what = receipt.message_type or "directory push"
        return Dropped("federation.receipt", f"{receipt.kind} ({what}): {receipt.reason or 'ok'}")
    forwarded = recipients_of(receipt)
    if forwarded is None:
        return Dropped("federation.receipt", f"{receipt.kind} about {receipt.in_reply_to}")
    refused = refused_recipients(receipt, forwarded)
    if not refused:
        return Dropped("federation.receipt", f"{receipt.kind}: every recipient taken")
    return [refusal(receipt, forwarded.sender, code, why) for code, why in refused]


def refused_recipients(receipt: Receipt, forwarded: Forwarded) -> list[tuple[str, str]]:
    """(code, reason) of each recipient the receipt says the other hub will not deliver to."""
    if receipt.kind == ReceiptKind.REJECTED:
        why = receipt.reason or "refused"
        return [(code, why) for code in forwarded.recipients]
    if receipt.kind == ReceiptKind.DELIVERY_FAILED:
        code = receipt.recipient
        if code is None or code not in forwarded.recipients:
            return []
        return [(code, receipt.reason or "could not be delivered")]
    return [
        (r.code, r.reason or r.outcome.value)
        for r in receipt.recipients
        if r.outcome is not RecipientOutcome.QUEUED and r.code in forwarded.recipients
    ]


def refusal(receipt: Receipt, sender: str, code: str, reason: str) -> Forward:
    """A status 02 from ``code`` to the document's ``sender``, saying which hub refused it and
    why."""
    status = Status(
        sender=Organization(organ_id=code),
        response_for=ResponseFor(organ_id=sender, document_id=receipt.document_id or ""),
        status_code=REFUSED,
        description=f"Từ chối bởi trục liên thông kế tiếp (refused by the next hub): {reason}",
        timestamp=receipt.at if receipt.at.tzinfo else receipt.at.replace(tzinfo=dt.UTC),
    )
    return Forward(
        message_id=hub_id(KIND_REFUSAL, receipt.in_reply_to, code, receipt.kind.value),
        message_type=t.TYPE_STATUS,
        body=encode_message(status),
    )


def describe(message: Incoming) -> str:
    """A short description for logs (never the body)."""
    return json.dumps(
        {"message_id": message.message_id, "type": message.message_type}, ensure_ascii=False
    )
