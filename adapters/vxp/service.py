"""What each SDK call does at the adapter, over the spool and the SDK store (no HTTP here).

- ``sendEdoc``: the package (edXML) is checked (``hash-file``, valid edXML of the declared
  ``messagetype``, its sender and ``from`` owned by this adapter: its agency or a unit it hosts
  per the relay's directory) and spooled like a dropped file. The spool key is (system id,
  SHA-256 of the package), so the SDK's retries get the first ``DocId`` and nothing is sent twice.
  The answer is OK once the package is durably spooled, whether or not RabbitMQ is up.
- A status 01 (Đã đến) goes out once per (document, recipient): automatically when the DMS acks
  the document ``done``, unless the DMS sent its own 01 first (or after: then its own is
  answered with the automatic one's ``DocId`` and not forwarded).
- ``getSentEdocList`` answers from the relay's receipts and the statuses received.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import os
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from adapters import assembly, chunks
from adapters.arrival import reply_status_id
from adapters.config import AdapterConfig, VxpConfig
from adapters.formats.base import FileFormat, FormatError
from adapters.received import ReceivedItem, UnknownItem
from adapters.spool import NewMessage, Outgoing, Spool
from adapters.vxp.answers import (
    BadHash,
    BadRequest,
    NotOwned,
    NotSupported,
    TooLarge,
    UnknownDocId,
    not_owned_text,
    ok,
)
from adapters.vxp.protocol import (
    SignedCall,
    hash_digest_matches,
    hash_file_matches,
    parse_date,
    parse_int,
    parse_to,
    sdk_hex,
    show_time,
)
from adapters.vxp.store import (
    AUTOMATIC,
    DONE,
    FAIL,
    FROM_DMS,
    INITIAL,
    PROCESSING,
    Arrival,
    Listed,
    SdkStore,
    SentPackage,
    now,
)
from schemas import Document, Receipt, Status, describe_status, encode_message
from schemas import topology as t
from schemas.envelope import message_type as type_of

log = structlog.get_logger()

#: ``messagetype`` of the SDK -> the kind of item.
MESSAGE_KINDS = {"edoc": t.TYPE_DOCUMENT, "status": t.TYPE_STATUS}
SDK_MESSAGE_TYPES = {kind: name for name, kind in MESSAGE_KINDS.items()}
STATE_DESCRIPTIONS = {
    INITIAL: "Mới đến, chưa nhận",
    PROCESSING: "Đang nhận",
    DONE: "Đã nhận",
    FAIL: "Nhận lỗi",
}
#: Longest page of ``getReceivedEdocList``.
MAX_PAGE = 1000
#: Page size when the DMS gives none.
DEFAULT_PAGE = 100
#: The connector name the received-item store records for items the SDK's DMS took.
CONNECTOR = "vxp"


def _notation(document: Document) -> str | None:
    if document.code is None or document.code.code_number is None:
        return None
    number = document.code.code_number
    return f"{number}/{document.code.code_notation}" if document.code.code_notation else number


class SdkService:
    """The calls of the SDK for one adapter (one instance per thread: it holds connections)."""

    def __init__(
        self, config: AdapterConfig, spool: Spool, store: SdkStore, fmt: FileFormat
    ) -> None:
        assert config.vxp is not None
        self.config = config
        self.vxp: VxpConfig = config.vxp
        self.spool = spool
        self.store = store
        self.format = fmt
        self.log = log.bind(agency=config.agency, systemid=self.vxp.systemid)

    # -- who may send ----------------------------------------------------------------------
    def owned_codes(self) -> set[str]:
        """The adapter's agency and the active units it hosts (the relay's directory)."""
        return {self.config.agency} | self.store.hosted_units(self.config.agency)

    def _check_owned(self, code: str, owned: set[str]) -> None:
        if code not in owned:
            raise NotOwned(not_owned_text(code, self.vxp.systemid))

    # -- sendEdoc ----------------------------------------------------------------------------
    def send_edoc(self, call: SignedCall, package: bytes) -> dict[str, Any]:
        kind = self._kind(call, default="edoc")
        given_hash = call.require("hash-file")
        if len(package) > self.config.max_file_bytes:
            raise TooLarge(
                f"the package is {len(package)} bytes, over this adapter's limit of "
                f"{self.config.max_file_bytes} bytes (max_file_bytes)"
            )
        if not hash_file_matches(given_hash, package):
            digest = hashlib.sha256(package).digest()
            raise BadHash(
                f"hash-file {given_hash!r} is not the SHA-256 of the {len(package)} bytes "
                f"received ({sdk_hex(digest)} in the SDK's form): the package was changed or "
                "cut on the way; nothing was sent, send it again"
            )
        sha = hashlib.sha256(package).hexdigest()
        key = f"vxp:{self.vxp.systemid}:{sha}"
        earlier = self.spool.find_source(key)
        if earlier is not None and self.store.sent(earlier.message_id) is not None:
            self.log.info("sdk.send_repeated", doc_id=earlier.message_id)
            return ok(DocId=earlier.message_id)
        try:
            message = self.format.read(package)
        except FormatError as e:
            raise BadRequest(f"the package is not a valid edXML package: {e}") from e
        return self._send(
            call,
            kind,
            message,
            lambda: self.spool.add(
                NewMessage(
                    message_id=str(uuid.uuid4()),
                    message_type=kind,
                    body=encode_message(message),
                    document_id=message.document_id,
                    source_key=key,
                )
            )[0],
        )

    def send_edoc_file(self, call: SignedCall, path: Path, digest: bytes) -> dict[str, Any]:
        """``sendEdoc`` of a package too large for one message (issue 17), already on disk at
        ``path`` with SHA-256 ``digest``: read from disk, its attachments sent in chunks, as a
        large file dropped into ``outbox/`` is."""
        kind = self._kind(call, default="edoc")
        given_hash = call.require("hash-file")
        if not hash_digest_matches(given_hash, digest):
            raise BadHash(
                f"hash-file {given_hash!r} is not the SHA-256 of the package received "
                f"({sdk_hex(digest)} in the SDK's form): the package was changed or cut on the "
                "way; nothing was sent, send it again"
            )
        key = f"vxp:{self.vxp.systemid}:{digest.hex()}"
        earlier = self.spool.find_source(key)
        if earlier is not None and self.store.sent(earlier.message_id) is not None:
            self.log.info("sdk.send_repeated", doc_id=earlier.message_id)
            return ok(DocId=earlier.message_id)
        if kind != t.TYPE_DOCUMENT:
            raise BadRequest(
                f"messagetype='status' but the package is {path.stat().st_size} bytes, over "
                f"chunk_threshold_bytes ({self.config.chunk_threshold_bytes}): only a document "
                "carries attachments; send a document (messagetype=edoc)"
            )
        try:
            with chunks.staged(self.config, path) as package:
                return self._send(
                    call,
                    kind,
                    package.document,
                    lambda: chunks.spool_package(self.config, self.spool, package, key),
                )
        except FormatError as e:
            raise BadRequest(f"the package is not a valid edXML package: {e}") from e

    def _send(
        self,
        call: SignedCall,
        kind: str,
        message: Document | Status,
        spool: Callable[[], Outgoing],
    ) -> dict[str, Any]:
        """Check a package read (its type, who may send it), spool it with ``spool`` and
        record it for ``getSentEdocList``."""
        if type_of(message) != kind:
            want = "a document (messagetype=edoc)" if kind == t.TYPE_DOCUMENT else "a status"
            raise BadRequest(
                f"messagetype={SDK_MESSAGE_TYPES[kind]!r} but the package is a "
                f"{type_of(message)}; send {want} or change messagetype"
            )
        owned = self.owned_codes()
        self._check_owned(message.sender.organ_id, owned)
        sender_param = call.get("from")
        if sender_param is not None:
            self._check_owned(sender_param, owned)
        recipients = self._recipients(message)
        to = parse_to(call.get("to"))
        if to and set(to) - set(recipients):
            self.log.warning(
                "sdk.to_differs", to=to, package_to=recipients, note="routed by the package's To"
            )
        if isinstance(message, Status) and message.status_code == "01":
            answered = self.store.arrival(message.document_id, message.sender.organ_id)
            if answered is not None:
                self.log.info("sdk.status01_already_sent", doc_id=answered.message_id)
                return ok(DocId=answered.message_id)
        entry = spool()
        self.store.record_sent(
            SentPackage(
                doc_id=entry.message_id,
                system_id=self.vxp.systemid,
                message_type=kind,
                document_id=message.document_id,
                sender=message.sender.organ_id,
                recipients=recipients,
                notation=_notation(message) if isinstance(message, Document) else None,
                title=message.subject if isinstance(message, Document) else message.description,
                sent_at=now(),
            )
        )
        if isinstance(message, Status) and message.status_code == "01":
            self.store.record_arrival(
                message.document_id, message.sender.organ_id, Arrival(entry.message_id, FROM_DMS)
            )
        self.log.info(
            "sdk.spooled",
            doc_id=entry.message_id,
            message_type=kind,
            document_id=message.document_id,
        )
        return ok(DocId=entry.message_id)

    @staticmethod
    def _recipients(message: Document | Status) -> list[str]:
        if isinstance(message, Document):
            return [r.organ_id for r in message.recipients]
        return [message.response_for.organ_id]

    @staticmethod
    def _kind(call: SignedCall, default: str) -> str:
        name = (call.get("messagetype") or default).lower()
        kind = MESSAGE_KINDS.get(name)
        if kind is None:
            raise BadRequest(f"XroadVnpt-messagetype: expected 'edoc' or 'status', got {name!r}")
        return kind

    # -- received items ----------------------------------------------------------------------
    def received_list(self, call: SignedCall) -> dict[str, Any]:
        kind = self._kind(call, default="edoc")
        since = parse_date("fromDate", call.get("fromDate"))
        until = parse_date("toDate", call.get("toDate"))
        state = call.get("status")
        if state is not None and call.get("docId") is not None:
            # The SDK never clears its parameter map: a status sent with a docId is the one the
            # last updateStatus carried, not a filter. Ignoring it lists more, never hides an
            # item (a status=fail left over would otherwise hide every new document).
            state = None
        if state is not None:
            state = state.lower()
            if state not in STATE_DESCRIPTIONS:
                raise BadRequest(
                    f"XroadVnpt-status: expected initial, processing, done or fail, got {state!r}"
                )
        size = parse_int("pageSize", call.get("pageSize"), DEFAULT_PAGE, low=1, high=100_000)
        size = min(size, MAX_PAGE)
        index = parse_int("pageIndex", call.get("pageIndex"), 1, low=0, high=10_000_000)
        offset = max(index - 1, 0) * size
        if state == DONE:
            return ok(data=[])  # an item acked done is never listed again
        items = self.store.listing(
            kind, since=since, until=until, state=state, offset=offset, limit=size
        )
        return ok(data=[self._listed(item) for item in items])

    @staticmethod
    def _listed(item: Listed) -> dict[str, str]:
        state = item.state or (FAIL if item.failures else INITIAL)
        return {
            "docId": str(item.seq),
            "serviceType": "eDoc",
            "messageType": SDK_MESSAGE_TYPES.get(item.kind, item.kind),
            "from": item.sender,
            "to": item.addressee,
            "status": state,
            "status_desc": STATE_DESCRIPTIONS.get(state, state),
            "created_time": show_time(item.received_at),
            "updated_time": show_time(item.updated_at or item.received_at),
        }

    def _received(self, call: SignedCall) -> ReceivedItem:
        doc_id = call.require("docId")
        # docIds are the store's sequence numbers; anything else (or beyond SQLite's 64-bit
        # integers) names no item.
        seq = int(doc_id) if doc_id.isascii() and doc_id.isdigit() else None
        item = self.store.received.get_by_seq(seq) if seq is not None and seq < 2**63 else None
        if item is None or item.kind not in SDK_MESSAGE_TYPES or not item.body:
            raise UnknownDocId(
                f"docId {doc_id!r} is not a document or status received for system "
                f"{self.vxp.systemid!r}; take docIds from getReceivedEdocList"
            )
        return item

    def package(self, call: SignedCall) -> bytes:
        """The edXML package of a received item (``downloadEdoc``), in memory."""
        package = self.package_file(call)
        if isinstance(package, Path):
            try:
                return package.read_bytes()
            finally:
                package.unlink(missing_ok=True)
        return package

    def package_file(self, call: SignedCall) -> bytes | Path:
        """The edXML package of a received item: its bytes, or, for a document whose
        attachments came in chunks (issue 17), a temporary file under ``.lienthong-blobs/``
        with the attachments streamed in from disk, which the caller deletes."""
        item = self._received(call)
        message = item.message()
        if isinstance(message, Status):
            return self.format.write_status(message)
        assert isinstance(message, Document)
        if not assembly.is_chunked(item):
            return self.format.write_delivered_document(message, item.headers, item.received_at)
        missing = [
            a.name
            for a in message.chunked_attachments()
            if not (self.config.blobs_dir / "in" / a.sha256).is_file()
        ]
        if missing:  # the DMS acked it done, and the adapter let the bytes go
            raise UnknownDocId(
                f"docId {call.require('docId')!r}: the attachments {missing} are no longer "
                "kept here (the document was acked done, so the adapter deleted them); the "
                "hub's operators can resend it"
            )
        fd, name = tempfile.mkstemp(prefix=".vxp-edoc-", dir=self.config.blobs_dir)
        os.close(fd)
        path = Path(name)
        try:
            render = functools.partial(self.format.write_delivered_document, at=item.received_at)
            assembly.write_document(render, item, path, self.config)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path

    def get_edoc(self, call: SignedCall) -> dict[str, Any]:
        return ok(data=base64.b64encode(self.package(call)).decode("ascii"))

    def update_status(self, call: SignedCall) -> dict[str, Any]:
        item = self._received(call)
        state = call.require("status").lower()
        if state not in (DONE, FAIL, PROCESSING):
            raise BadRequest(f"XroadVnpt-status: expected done, fail or processing, got {state!r}")
        bound = self.log.bind(doc_id=str(item.seq), message_id=item.message_id, state=state)
        received = self.store.received
        if item.state != "pending":
            bound.info("sdk.already_acked")
            return ok()
        if state == FAIL:
            received.mark_failed(item.kind, item.message_id, CONNECTOR, "the DMS answered fail")
            self.store.set_state(item, FAIL)
            bound.warning("sdk.dms_failed", note="kept listed until acked done")
            return ok()
        if state == PROCESSING:
            self.store.set_state(item, PROCESSING)
            bound.info("sdk.processing")
            return ok()
        answer_01 = False
        if item.kind == t.TYPE_DOCUMENT and item.document_id is not None:
            # One 01 per (document, recipient): the automatic one is recorded before the item
            # is taken (which spools it), unless the DMS sent its own first.
            kept = self.store.record_arrival(
                item.document_id,
                item.addressee,
                Arrival(reply_status_id(item.message_id), AUTOMATIC),
            )
            answer_01 = kept.origin == AUTOMATIC
        try:
            received.mark_taken(item.kind, item.message_id, CONNECTOR, answer_01=answer_01)
        except UnknownItem as e:  # cannot happen: it was just read
            raise UnknownDocId(str(e)) from e
        bound.info("sdk.acked", status01=answer_01)
        return ok()

    def count(self, kind: str) -> dict[str, Any]:
        return ok(count=self.store.received.count_pending(kind))

    # -- sent --------------------------------------------------------------------------------
    def sent_list(self, call: SignedCall) -> dict[str, Any]:
        doc_id = call.require("docId")
        sent = self.store.sent(doc_id)
        if sent is None:
            raise UnknownDocId(
                f"docId {doc_id!r} is not a package system {self.vxp.systemid!r} sent through "
                "this adapter; use the DocId that sendEdoc answered"
            )
        outcomes: dict[str, tuple[str, str]] = {}
        receipts = self.store.about(t.TYPE_RECEIPT, sent.document_id or "")
        for receipt_item in receipts:
            receipt = receipt_item.message()
            if not isinstance(receipt, Receipt) or receipt.in_reply_to != doc_id:
                continue
            if receipt.kind == "rejected":
                for code in sent.recipients:
                    outcomes[code] = ("fail", f"Bị từ chối: {receipt.reason or ''}".strip())
            elif receipt.kind == "delivery_failed" and receipt.recipient:
                outcomes[receipt.recipient] = ("fail", receipt.reason or "Không gửi được")
            for result in receipt.recipients:
                done = result.outcome == "queued"
                outcomes[result.code] = (
                    "done" if done else "fail",
                    "Đã chuyển đến nơi nhận" if done else (result.reason or str(result.outcome)),
                )
        latest: dict[str, tuple[str, dt.datetime]] = {}
        if sent.document_id is not None and sent.message_type == t.TYPE_DOCUMENT:
            for status_item in self.store.about(t.TYPE_STATUS, sent.document_id):
                status = status_item.message()
                if not isinstance(status, Status):
                    continue
                latest[status.sender.organ_id] = (status.status_code, status.timestamp)
        rows = []
        for code in sent.recipients:
            send_status, send_desc = outcomes.get(code, ("processing", "Đang gửi"))
            receive = latest.get(code)
            rows.append(
                {
                    "serviceType": "eDoc",
                    "senderDocId": sent.doc_id,
                    "receiverDocId": "",
                    "fromCode": sent.sender,
                    "toCode": code,
                    "sendStatus": send_status,
                    "sendStatusDesc": send_desc,
                    "receiveStatus": receive[0] if receive else "",
                    "receiveStatusDesc": describe_status(receive[0]) if receive else "",
                    "sentTime": show_time(sent.sent_at),
                    "receivedTime": show_time(receive[1]) if receive else "",
                    "notation": sent.notation or "",
                    "title": sent.title or "",
                    "messageType": SDK_MESSAGE_TYPES.get(sent.message_type, sent.message_type),
                }
            )
        return ok(data=rows)

    # -- directory ---------------------------------------------------------------------------
    def agencies(self, *, qd20: bool) -> dict[str, Any]:
        rows = []
        for entry in self.store.directory():
            if entry.state != "active":
                continue
            row = {
                "id": entry.code,
                "pid": entry.host or "",
                "code": entry.code,
                "name": entry.name,
                "mail": "",
            }
            row["code102" if qd20 else "oldCode"] = entry.code if qd20 else ""
            rows.append(row)
        return ok(data=rows)

    def directory_is_kept_by_the_hub(self, call_name: str) -> dict[str, Any]:
        raise NotSupported(
            f"{call_name}: the directory is kept by the hub's operators, not by each DMS; ask "
            "them to add or remove the agency (lienthong agency add / suspend)"
        )
