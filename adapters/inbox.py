"""The inbox side of the folder connector: store each delivery for the DMS, exactly once.

:meth:`InboxWriter.handle` decides, in one place, whether a delivery is acked or rejected:

* stored (file written atomically, message id recorded) -> ack;
* already stored (a redelivered copy) -> ack, nothing written;
* cannot be stored (permission denied, disk full) or cannot be read -> reject without requeue,
  so the inbox's dead-letter policy hands it back to the relay, which retries later.

A document is answered by an automatic status 01 (Đã đến) to its sender, spooled in the same
SQLite transaction that records the delivery.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from adapters.config import AdapterConfig
from adapters.files import fsync_dir, write_atomic
from adapters.formats.base import FileFormat
from adapters.spool import NewMessage, Spool, SpoolError
from schemas import Document, Organization, Receipt, ResponseFor, Status, describe_status
from schemas import topology as t
from schemas.envelope import InvalidMessage, decode_message, encode_message

log = structlog.get_logger()

#: Namespace of the ids the adapter derives (uuid5); never change it.
ADAPTER_NAMESPACE = uuid.UUID("0b6f4b8e-2d0c-5a57-8c1e-7a4f3e9d2b61")
#: Vietnam time, for the timestamps a person reads in the DMS.
ICT = dt.timezone(dt.timedelta(hours=7), "ICT")


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


def reply_status_id(delivery_id: str) -> str:
    """The message id of the automatic status 01 answering delivery ``delivery_id``."""
    return str(uuid.uuid5(ADAPTER_NAMESPACE, f"status01/{delivery_id}"))


def arrival_status(document: Document, recipient: str, now: dt.datetime | None = None) -> Status:
    """Status 01 (Đã đến) from ``recipient`` (maybe a hosted unit) to the document's sender."""
    name = next((r.organ_name for r in document.recipients if r.organ_id == recipient), None)
    code = None
    promulgation_date = None
    if document.code is not None and document.code.code_number is not None:
        code = document.code.code_number
        if document.code.code_notation:
            code += "/" + document.code.code_notation
    if document.promulgation_info is not None:
        promulgation_date = document.promulgation_info.promulgation_date
    return Status(
        sender=Organization(organ_id=recipient, organ_name=name),
        response_for=ResponseFor(
            organ_id=document.sender.organ_id,
            code=code,
            promulgation_date=promulgation_date,
            document_id=document.document_id,
        ),
        status_code="01",
        description=describe_status("01"),
        timestamp=(now or dt.datetime.now(ICT)).replace(microsecond=0),
    )


_SAFE_NAME = re.compile(r"[0-9A-Za-z.-]{1,64}")


def _os_reason(e: OSError) -> str:
    return f"{e.strerror} ({e.filename})" if e.filename else str(e.strerror or e)


class InboxWriter:
    """Writes deliveries into ``inbox/documents|statuses|receipts`` in the configured format."""

    def __init__(self, config: AdapterConfig, spool: Spool, fmt: FileFormat) -> None:
        self.config = config
        self.spool = spool
        self.format = fmt

    def handle(self, delivery: Delivery) -> Action:
        """Store one delivery; see :meth:`handle_batch`."""
        return self.handle_batch([delivery])[0]

    def handle_batch(self, deliveries: list[Delivery]) -> list[Action]:
        """Store deliveries for the DMS; one action per delivery, in order.

        Each file is written atomically and fsynced; then each folder is fsynced once and all
        message ids (with the status 01 replies) are recorded in one transaction. Only then is
        a delivery acked; whatever could not be stored is rejected.
        """
        actions: list[Action | None] = [None] * len(deliveries)
        prepared: list[tuple[int, Path, bytes, NewMessage | None, Any]] = []
        seen: dict[str, int] = {}  # message id -> index of its first copy in this batch
        copies: list[tuple[int, int]] = []  # (later copy, first copy): share the outcome
        for i, delivery in enumerate(deliveries):
            bound = log.bind(
                message_id=delivery.id,
                message_type=delivery.message_type,
                agency=self.config.agency,
            )
            if delivery.id in seen:
                copies.append((i, seen[delivery.id]))
                continue
            try:
                duplicate = self.spool.is_received(delivery.id)
            except SpoolError as e:
                bound.error("inbox.store_failed", reason=str(e))
                actions[i] = Action.REJECT
                continue
            if duplicate:
                bound.info("inbox.duplicate_acked")
                actions[i] = Action.ACK
                continue
            item = self._prepare(delivery, bound)
            if item is None:
                actions[i] = Action.REJECT
                continue
            seen[delivery.id] = i
            path, data, reply, bound = item
            prepared.append((i, path, data, reply, bound))

        written: list[tuple[int, Path, NewMessage | None, Any]] = []
        for i, path, data, reply, bound in prepared:
            try:
                write_atomic(path, data, sync_dir=False)
            except OSError as e:
                bound.error("inbox.store_failed", path=str(path), reason=_os_reason(e))
                actions[i] = Action.REJECT
                continue
            written.append((i, path, reply, bound))
        for directory in {path.parent for _, path, _, _ in written}:
            try:
                fsync_dir(directory)
            except OSError as e:
                for i, path, _, bound in written:
                    if path.parent == directory:
                        bound.error("inbox.store_failed", path=str(path), reason=_os_reason(e))
                        actions[i] = Action.REJECT
        stored = [w for w in written if actions[w[0]] is None]
        if stored:
            try:
                self.spool.record_received_many(
                    [
                        (deliveries[i].id, deliveries[i].message_type or "", str(path), reply)
                        for i, path, reply, _ in stored
                    ]
                )
            except SpoolError as e:
                for i, path, _, bound in stored:
                    bound.error("inbox.store_failed", path=str(path), reason=str(e))
                    actions[i] = Action.REJECT
            else:
                for i, path, _, bound in stored:
                    bound.info("inbox.stored", file=path.name)
                    actions[i] = Action.ACK
        for later, first in copies:  # acked only if the first copy was stored
            actions[later] = actions[first]
        return [a if a is not None else Action.REJECT for a in actions]

    def _prepare(
        self, delivery: Delivery, bound: Any
    ) -> tuple[Path, bytes, NewMessage | None, Any] | None:
        """Decode and render one delivery (and its reply); None, logged, if it cannot be."""
        try:
            message = decode_message(delivery.body, expect=delivery.message_type)
        except InvalidMessage as e:
            bound.error("inbox.invalid", reason=str(e))
            return None
        bound = bound.bind(document_id=getattr(message, "document_id", None))
        try:
            path, data = self._render(delivery, message)
        except ValueError as e:  # FormatError included: the format cannot express it
            bound.error("inbox.render_failed", reason=str(e))
            return None
        reply = None
        if isinstance(message, Document):
            recipient = delivery.header(t.HEADER_RECIPIENT) or self.config.agency
            status = arrival_status(message, recipient)
            reply = NewMessage(
                message_id=reply_status_id(delivery.id),
                message_type=t.TYPE_STATUS,
                body=encode_message(status),
                document_id=message.document_id,
            )
        return path, data, reply, bound

    def file_stem(self, delivery: Delivery) -> str:
        """``<addressee>_<delivery message id>``: the addressee is the agency or hosted unit the
        relay addressed (a DMS serving several units needs to know), and the name derives from
        the delivery alone, so a copy written again after a crash replaces the first one."""
        addressee = delivery.header(t.HEADER_RECIPIENT) or self.config.agency
        if not _SAFE_NAME.fullmatch(addressee):
            addressee = self.config.agency
        return f"{addressee}_{delivery.id}"

    def _render(
        self, delivery: Delivery, message: Document | Status | Receipt
    ) -> tuple[Path, bytes]:
        name = self.file_stem(delivery)
        if isinstance(message, Document):
            return (
                self.config.inbox_documents / (name + self.format.suffix),
                self.format.write_delivered_document(message, delivery.headers),
            )
        if isinstance(message, Status):
            return (
                self.config.inbox_statuses / (name + self.format.suffix),
                self.format.write_status(message),
            )
        return self.config.inbox_receipts / (name + ".json"), self.format.write_receipt(message)
