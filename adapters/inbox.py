"""The broker side of the inbox: record each delivery in the received-item store, once.

:meth:`InboxRecorder.handle_batch` decides, in one place, whether a delivery is acked or
rejected:

* recorded durably in the store (:mod:`adapters.received`) -> ack;
* already recorded (a redelivered copy: same kind and message id) -> ack, nothing stored;
* cannot be recorded (spool not writable, disk full), cannot be read, or cannot be written in
  the folder connector's format -> reject without requeue, so the inbox's dead-letter policy
  hands it back to the relay, which retries later.

Nothing is written for the DMS here: a connector takes the items from the store (the folder
connector: :mod:`adapters.handover`) and the status 01 is spooled when the DMS has a document.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from adapters.arrival import ADAPTER_NAMESPACE, ICT, arrival_status, reply_status_id
from adapters.assembly import Assembler
from adapters.config import AdapterConfig
from adapters.received import KINDS, NewItem, ReceivedStore
from adapters.spool import Spool, SpoolError
from schemas import Document, Receipt, Status
from schemas import topology as t
from schemas.chunks import TYPE_CHUNK
from schemas.envelope import (
    InvalidMessage,
    decode_message,
    encode_message,
    message_type,
    split_receipts,
)

log = structlog.get_logger()

__all__ = [
    "ADAPTER_NAMESPACE",
    "ICT",
    "Action",
    "Delivery",
    "InboxRecorder",
    "InboxWriter",
    "arrival_status",
    "reply_status_id",
]


class Action(enum.Enum):
    ACK = "ack"
    REJECT = "reject"  # basic_reject(requeue=False): dead-lettered back to the relay


@dataclass(frozen=True)
class Delivery:
    """One inbox message, independent of the AMQP client."""

    message_id: str | None
    message_type: str | None
    body: bytes
    headers: Mapping[str, object] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        value = self.headers.get(name)
        if isinstance(value, bytes):
            return value.decode("utf-8", "replace")
        return value if isinstance(value, str) else None

    @property
    def id(self) -> str:
        """The delivery's message id; derived from the body if the relay set none."""
        return self.message_id or "sha256-" + hashlib.sha256(self.body).hexdigest()


#: Checks that a message can be handed to the DMS (the folder connector renders it in its
#: format); raises ValueError saying why not.
RenderCheck = Callable[[Document | Status | Receipt, Mapping[str, object]], None]


class InboxRecorder:
    """Records inbox deliveries in the received-item store; one per broker thread."""

    def __init__(
        self,
        config: AdapterConfig,
        spool: Spool,
        *,
        check: RenderCheck | None = None,
        on_recorded: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.store = ReceivedStore(spool)
        self.check = check
        self.on_recorded = on_recorded
        self.assembler = Assembler(config, spool, self.store)  # issue 17: chunked documents

    def tick(self) -> None:
        """Move chunked transfers on (:mod:`adapters.assembly`); called every broker round."""
        try:
            completed = self.assembler.pump()
        except SpoolError as e:
            log.error("inbox.store_failed", agency=self.config.agency, reason=str(e))
            return
        if completed and self.on_recorded is not None:
            self.on_recorded()

    def handle(self, delivery: Delivery) -> Action:
        """Record one delivery; see :meth:`handle_batch`."""
        return self.handle_batch([delivery])[0]

    def handle_batch(self, deliveries: list[Delivery]) -> list[Action]:
        """Record deliveries for the DMS; one action per delivery, in order.

        Every new delivery of the batch is recorded in one durable transaction; only then is
        it acked. A copy already recorded is acked; whatever cannot be recorded is rejected.
        """
        actions: list[Action | None] = [None] * len(deliveries)
        new: list[tuple[int, NewItem, Any]] = []
        receipts: list[Receipt] = []  # the new items' receipts, as decoded (issue 17: release)
        seen: dict[tuple[str, str], int] = {}  # (kind, message id) -> its first index here
        copies: list[tuple[int, int]] = []  # (later copy, first copy): share the outcome
        chunks: list[int] = []  # issue 17: chunks are written and recorded as one batch
        for i, delivery in enumerate(deliveries):
            if delivery.message_type == TYPE_CHUNK:
                chunks.append(i)
                continue
            bound = log.bind(
                message_id=delivery.id,
                message_type=delivery.message_type,
                agency=self.config.agency,
            )
            if self.assembler.takes(delivery.message_type, delivery.body):  # issue 17
                try:
                    taken = self.assembler.take(
                        delivery.id, delivery.message_type, delivery.body, delivery.headers
                    )
                except (SpoolError, OSError) as e:
                    bound.error("inbox.store_failed", reason=str(e))
                    taken = False
                actions[i] = Action.ACK if taken else Action.REJECT
                continue
            try:
                if delivery.message_type in KINDS and self.store.is_recorded(
                    delivery.message_type, delivery.id
                ):
                    bound.info("inbox.duplicate_acked")
                    actions[i] = Action.ACK
                    continue
            except SpoolError as e:
                bound.error("inbox.store_failed", reason=str(e))
                actions[i] = Action.REJECT
                continue
            items = self._items(delivery, bound)
            if items is None:
                actions[i] = Action.REJECT
                continue
            for item, message in items:
                key = (item.kind, item.message_id)
                if key in seen:
                    copies.append((i, seen[key]))
                    continue
                seen[key] = i
                new.append((i, item, bound.bind(document_id=item.document_id)))
                if isinstance(message, Receipt):
                    receipts.append(message)
        if new:
            try:
                self._release_sent_attachments(receipts)
                created = self.store.record([item for _, item, _ in new])
            except SpoolError as e:
                for i, _, bound in new:
                    bound.error("inbox.store_failed", reason=str(e))
                    actions[i] = Action.REJECT
            else:
                for (i, item, bound), fresh in zip(new, created, strict=True):
                    event = "inbox.stored" if fresh else "inbox.duplicate_acked"
                    if item.message_id == deliveries[i].id:
                        bound.info(event)
                    else:  # one of a delivery's receipts
                        bound.info(event, receipt_id=item.message_id)
                    actions[i] = Action.ACK
                if self.on_recorded is not None:
                    self.on_recorded()
        if chunks:
            try:
                stored = self.assembler.take_chunks(
                    [(deliveries[i].id, deliveries[i].body) for i in chunks]
                )
            except (SpoolError, OSError) as e:
                log.error("inbox.store_failed", agency=self.config.agency, reason=str(e))
                stored = [False] * len(chunks)
            for i, done in zip(chunks, stored, strict=True):
                actions[i] = Action.ACK if done else Action.REJECT
        for later, first in copies:  # acked only if the first copy was recorded
            actions[later] = actions[first]
        return [a if a is not None else Action.REJECT for a in actions]

    def _release_sent_attachments(self, receipts: list[Receipt]) -> None:
        """The relay's receipts of chunked submissions free their ``out/`` files (issue 17,
        :mod:`adapters.blobs`): released before the receipts are recorded and acked, so a crash
        in between releases them again when the receipts come back. The receipts as they were
        decoded to be recorded (each is decoded once)."""
        if receipts:
            self.assembler.blobs.release(receipts)

    def _items(
        self, delivery: Delivery, bound: Any
    ) -> list[tuple[NewItem, Document | Status | Receipt]] | None:
        """The items to record for one delivery, each with the message it was decoded into;
        None, logged, if it cannot be handed over.

        A ``receipts`` message (the relay's receipts of one batch together) is its receipts,
        each recorded as if it had come alone, under its own ``receipt_id`` (the message id it
        has alone), so one already recorded is recognised however it was grouped; if one cannot
        be handed over, none is recorded and the message is rejected."""
        try:
            if delivery.message_type != t.TYPE_RECEIPTS:
                message = decode_message(delivery.body, expect=delivery.message_type)
                item = self._item(delivery, delivery.id, delivery.body, message, bound)
                return None if item is None else [(item, message)]
            receipts = split_receipts(delivery.body)
        except InvalidMessage as e:
            bound.error("inbox.invalid", reason=str(e))
            return None
        items: list[tuple[NewItem, Document | Status | Receipt]] = []
        for receipt in receipts:
            body = encode_message(receipt)
            item = self._item(delivery, str(receipt.receipt_id), body, receipt, bound)
            if item is None:
                return None
            items.append((item, receipt))
        return items

    def _item(
        self,
        delivery: Delivery,
        message_id: str,
        body: bytes,
        message: Document | Status | Receipt,
        bound: Any,
    ) -> NewItem | None:
        """The item to record for one decoded message; None, logged, if it cannot be handed
        over."""
        document_id = getattr(message, "document_id", None)
        if self.check is not None:
            try:
                self.check(message, delivery.headers)
            except ValueError as e:  # FormatError included: the format cannot express it
                bound.error("inbox.render_failed", document_id=document_id, reason=str(e))
                return None
        return NewItem(
            kind=message_type(message),
            message_id=message_id,
            addressee=delivery.header(t.HEADER_RECIPIENT) or self.config.agency,
            body=body,
            document_id=document_id if isinstance(document_id, str) else None,
            headers=delivery.headers,
        )


#: The name the broker loop (:mod:`adapters.broker`) knows the inbox side by.
InboxWriter = InboxRecorder
