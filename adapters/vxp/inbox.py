"""Inbox deliveries into the SDK connector's store, and the relay's directory snapshots.

:class:`SdkInbox` takes the place of the folder connector's :class:`~adapters.inbox.InboxWriter`
in the broker loop. Directory snapshots (AMQP ``type`` = ``directory``) are always kept, whether
or not the SDK connector is on. With the SDK connector on (``[vxp]`` configured), documents,
statuses and receipts are recorded in the store (one transaction per batch, before the acks) and
the DMS takes them through ``getReceivedEdocList`` / ``getEdoc`` / ``updateStatus``; the status
01 is spooled when the DMS acks a document ``done``, not on arrival. With it off, everything
else goes to the folder connector as before.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

import structlog

from adapters.config import AdapterConfig
from adapters.formats.base import FileFormat
from adapters.inbox import ADAPTER_NAMESPACE, Action, Delivery, InboxWriter
from adapters.spool import Spool, SpoolError
from adapters.vxp.store import NewItem, SdkStore
from schemas import Document, Receipt, Status
from schemas import topology as t
from schemas.directory import TYPE_DIRECTORY, decode_snapshot
from schemas.envelope import InvalidMessage, decode_message

log = structlog.get_logger()


def item_doc_id(kind: str, message_id: str) -> str:
    """The ``docId`` the DMS sees for a received item: stable, and distinct per kind."""
    return str(uuid.uuid5(ADAPTER_NAMESPACE, f"sdk/{kind}/{message_id}"))


def _text_headers(headers: Mapping[str, object]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in headers.items():
        if isinstance(value, bytes):
            out[key] = value.decode("utf-8", "replace")
        elif isinstance(value, str | int | float | bool):
            out[key] = str(value)
    return out


class SdkInbox(InboxWriter):
    """Keeps directory snapshots; with ``hand_over``, records every other delivery for the SDK."""

    def __init__(
        self, config: AdapterConfig, spool: Spool, fmt: FileFormat, *, hand_over: bool
    ) -> None:
        super().__init__(config, spool, fmt)
        self.hand_over = hand_over
        self.store = SdkStore(config.spool_path)

    def handle_batch(self, deliveries: list[Delivery]) -> list[Action]:
        actions: list[Action] = [Action.REJECT] * len(deliveries)
        to_folder: list[int] = []
        to_store: list[tuple[int, NewItem]] = []
        for i, delivery in enumerate(deliveries):
            if delivery.message_type == TYPE_DIRECTORY:
                actions[i] = self._directory(delivery)
            elif self.hand_over:
                item = self._item(delivery)
                if item is not None:
                    to_store.append((i, item))
            else:
                to_folder.append(i)
        if to_folder:
            results = super().handle_batch([deliveries[i] for i in to_folder])
            for i, action in zip(to_folder, results, strict=True):
                actions[i] = action
        if to_store:
            try:
                created = self.store.record([item for _, item in to_store])
            except SpoolError as e:
                for _, item in to_store:
                    log.error("sdk.store_failed", message_id=item.message_id, reason=str(e))
                return actions  # the stored ones stay REJECT: the relay retries later
            for (i, item), new in zip(to_store, created, strict=True):
                log.info(
                    "sdk.stored" if new else "inbox.duplicate_acked",
                    agency=self.config.agency,
                    message_id=item.message_id,
                    message_type=item.kind,
                    document_id=item.document_id,
                    doc_id=item.doc_id,
                )
                actions[i] = Action.ACK
        return actions

    def _item(self, delivery: Delivery) -> NewItem | None:
        try:
            message = decode_message(delivery.body, expect=delivery.message_type)
        except InvalidMessage as e:
            log.error(
                "inbox.invalid", agency=self.config.agency, message_id=delivery.id, reason=str(e)
            )
            return None
        kind = delivery.message_type or t.TYPE_DOCUMENT
        sender: str | None = None
        document_id: str | None = None
        in_reply_to: str | None = None
        if isinstance(message, Document):
            kind, sender = t.TYPE_DOCUMENT, message.sender.organ_id
            document_id = message.document_id
        elif isinstance(message, Status):
            kind, sender = t.TYPE_STATUS, message.sender.organ_id
            document_id = message.response_for.document_id
        elif isinstance(message, Receipt):
            kind, sender, document_id = t.TYPE_RECEIPT, message.sender, message.document_id
            in_reply_to = message.in_reply_to
        return NewItem(
            doc_id=item_doc_id(kind, delivery.id),
            kind=kind,
            message_id=delivery.id,
            addressee=delivery.header(t.HEADER_RECIPIENT) or self.config.agency,
            sender=sender,
            document_id=document_id,
            in_reply_to=in_reply_to,
            headers=_text_headers(delivery.headers),
            body=delivery.body,
        )

    def _directory(self, delivery: Delivery) -> Action:
        try:
            snapshot = decode_snapshot(delivery.body)
        except ValueError as e:
            log.error("directory.invalid", agency=self.config.agency, reason=str(e))
            return Action.REJECT
        try:
            replaced = self.store.replace_directory(snapshot)
        except SpoolError as e:
            log.error("directory.store_failed", agency=self.config.agency, reason=str(e))
            return Action.REJECT
        log.info(
            "directory.updated" if replaced else "directory.unchanged",
            agency=self.config.agency,
            version=snapshot.version,
            agencies=len(snapshot.agencies),
        )
        return Action.ACK


def inbox_writer(config: AdapterConfig, spool: Spool, fmt: FileFormat) -> InboxWriter:
    """The broker loop's inbox writer: the SDK connector hands received items over when it is
    configured, the folder connector otherwise; directory snapshots are kept either way."""
    return SdkInbox(config, spool, fmt, hand_over=config.vxp is not None)
