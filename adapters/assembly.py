"""Receiving a large document in chunks (issue 17): the recipient's adapter.

A delivered document whose attachments say ``transfer = "chunks"`` is not handed over as it
is. It is recorded as an *assembly* (table ``assemblies`` in the spool) and acked; the adapter
then asks the relay for the chunks of each attachment (``chunk_request`` rows through the spool,
``chunk_window`` at a time, asked again after ``chunk_retry_seconds`` without one). Each chunk
delivered is written into ``<root>/.lienthong-blobs/parts/`` at its offset and fsynced, then
recorded (``assembly_parts``), then acked: a chunk delivered twice is written once, and a
chunk lost in a crash before it was recorded is asked for again. When every byte of an
attachment is there its size and SHA-256 are checked (a mismatch throws the parts away and
starts again) and the file is renamed to ``.lienthong-blobs/in/<sha256>``. Only when every
attachment is there is the document recorded in the received-item store, from which a
connector hands it over (the folder connector writes the attachments into the document file
as it writes it: :func:`write_document`). A half-received document is never handed over.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import tempfile
import time
import uuid
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Final

import structlog
from pydantic import ValidationError

from adapters.blobs import BlobKeeper, chunked_shas, part_name
from adapters.config import AdapterConfig
from adapters.edxml.attachments import encode_attachment
from adapters.received import NewItem, ReceivedItem, ReceivedStore, json_headers
from adapters.spool import NewMessage, Spool
from schemas import Attachment, Document
from schemas import topology as t
from schemas.chunks import (
    TYPE_CHUNK,
    TYPE_CHUNK_REFUSED,
    TYPE_CHUNK_REQUEST,
    ChunkRefused,
    ChunkRequest,
    InvalidChunk,
    decode_chunk,
)
from schemas.document import TRANSFER_CHUNKS
from schemas.envelope import InvalidMessage, decode_message

log = structlog.get_logger()

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS assemblies (
    message_id  TEXT PRIMARY KEY,        -- the delivery's message id
    sender      TEXT NOT NULL,           -- the connected agency that submitted it
    addressee   TEXT NOT NULL,
    document_id TEXT,
    headers     TEXT NOT NULL,
    body        BLOB NOT NULL,           -- the document as delivered (attachments by reference)
    asked       TEXT NOT NULL DEFAULT '{}',  -- sha256 -> offsets asked for and not yet here
    started_at  REAL NOT NULL,
    progress_at REAL NOT NULL,           -- last time a chunk came (or it was asked for)
    chunk_at    REAL,                    -- last time a chunk came
    abandoned_at REAL,                   -- given up: never handed over (the row is the record)
    abandon_reason TEXT
);
CREATE TABLE IF NOT EXISTS assembly_parts (
    sender  TEXT NOT NULL,
    sha256  TEXT NOT NULL,
    offset  INTEGER NOT NULL,
    length  INTEGER NOT NULL,
    PRIMARY KEY (sender, sha256, offset)
);
"""
# Columns added after the first version of the table (a spool written by it gets them).
_ADDED_COLUMNS: Final = {
    "chunk_at": "REAL",
    "abandoned_at": "REAL",
    "abandon_reason": "TEXT",
}
_CHUNKED: Final = re.compile(rb'"transfer"\s*:\s*"chunks"')
#: The states of an assembly (``abandoned_at`` set or not), as the metrics name them.
ACTIVE: Final = "active"
ABANDONED: Final = "abandoned"


class Assembler:
    """The recipient's side of the chunked transfer; one per broker thread, like the spool."""

    def __init__(self, config: AdapterConfig, spool: Spool, store: ReceivedStore) -> None:
        self.config = config
        self.spool = spool
        self.store = store
        self.parts = config.blobs_dir / "parts"
        self.done = config.blobs_dir / "in"
        self.blobs = BlobKeeper(config, spool)
        self._ready = False

    def _prepare(self) -> None:
        if self._ready:
            return
        with self.spool.transaction() as db:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            have = {row[1] for row in db.execute("PRAGMA table_info(assemblies)")}
            for column, kind in _ADDED_COLUMNS.items():
                if column not in have:
                    db.execute(f"ALTER TABLE assemblies ADD COLUMN {column} {kind}")
        self.parts.mkdir(parents=True, exist_ok=True)
        self.done.mkdir(parents=True, exist_ok=True)
        self._ready = True

    # -- deliveries -------------------------------------------------------------------

    def takes(self, message_type: str | None, body: bytes) -> bool:
        """Whether a delivery is a chunk (or the relay's refusal to send more) or a document
        whose attachments come in chunks."""
        if message_type in (TYPE_CHUNK, TYPE_CHUNK_REFUSED):
            return True
        return message_type == t.TYPE_DOCUMENT and _CHUNKED.search(body) is not None

    def take(
        self, message_id: str, message_type: str | None, body: bytes, headers: Mapping[str, object]
    ) -> bool:
        """Record a chunk or a chunked document; True to ack it (False: reject it, logged)."""
        self._prepare()
        bound = log.bind(agency=self.config.agency, message_id=message_id)
        if message_type == TYPE_CHUNK:
            return self.take_chunks([(message_id, body)])[0]
        if message_type == TYPE_CHUNK_REFUSED:
            try:
                refusal = ChunkRefused.model_validate_json(body, by_alias=True)
            except ValidationError as e:
                bound.error("inbox.chunk_refused_invalid", reason=str(e))
                return False  # dead-lettered: the relay's log shows it
            self.refused(refusal)
            return True
        try:
            document = decode_message(body, expect=t.TYPE_DOCUMENT)
        except InvalidMessage as e:
            bound.error("inbox.invalid", reason=str(e))
            return False
        assert isinstance(document, Document)
        sender = _header(headers, t.HEADER_SENDER) or document.sender.organ_id
        if self.store.is_recorded(t.TYPE_DOCUMENT, message_id):
            bound.info("inbox.duplicate_acked")
            return True
        now = time.time()
        with self.spool.transaction() as db:
            # A document delivered again after its assembly was abandoned (an operator's
            # `resend` at the hub) starts it again; a redelivered copy of one under way does not.
            revived = db.execute(
                "UPDATE assemblies SET abandoned_at = NULL, abandon_reason = NULL, "
                "asked = '{}', started_at = ?, progress_at = 0, chunk_at = NULL "
                "WHERE message_id = ? AND abandoned_at IS NOT NULL",
                (now, message_id),
            ).rowcount
            db.execute(
                "INSERT INTO assemblies (message_id, sender, addressee, document_id, headers, "
                "body, started_at, progress_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (message_id) DO NOTHING",
                (
                    message_id,
                    sender,
                    _header(headers, t.HEADER_RECIPIENT) or self.config.agency,
                    document.document_id,
                    json.dumps(json_headers(headers), ensure_ascii=False),
                    body,
                    now,
                    0.0,
                ),
            )
        bound.info(
            "inbox.assembly_restarted" if revived else "inbox.assembly_started",
            document_id=document.document_id,
            bytes=sum(a.size for a in document.chunked_attachments()),
        )
        return True

    def take_chunks(self, chunks: list[tuple[str, bytes]]) -> list[bool]:
        """Record a batch of chunk deliveries (message id, body); True to ack each.

        Each chunk is written at its offset into its part file, every file written is fsynced
        once, then every chunk is recorded in one transaction: only then may they be acked (a
        chunk lost in a crash before that is asked for again). A chunk delivered twice is
        written once; one nobody waits for any more (its assembly finished or was abandoned)
        is not written. OSError or SpoolError: nothing of the batch may be acked.
        """
        self._prepare()
        results: list[bool] = []
        written: dict[tuple[str, str, int], int] = {}  # (sender, sha256, offset) -> length
        files: dict[Path, int] = {}
        try:
            for message_id, body in chunks:
                results.append(True)
                try:
                    header, data = decode_chunk(body)
                except InvalidChunk as e:
                    # nothing to retry: the relay would send the same bytes again
                    log.error(
                        "inbox.chunk_invalid",
                        agency=self.config.agency,
                        message_id=message_id,
                        reason=str(e),
                    )
                    continue
                sender, sha256, offset = header.sender or "", header.sha256, header.offset
                if (sender, sha256, offset) in written or not self._wanted(sender, sha256, offset):
                    continue
                part = self._part(sender, sha256)
                fd = files.get(part)
                if fd is None:
                    fd = files[part] = os.open(part, os.O_WRONLY | os.O_CREAT, 0o600)
                view, at = data, offset
                while view:
                    n = os.pwrite(fd, view, at)
                    view, at = view[n:], at + n
                written[(sender, sha256, offset)] = len(data)
            for fd in files.values():
                os.fsync(fd)
        finally:
            for fd in files.values():
                os.close(fd)
        if written:
            now = time.time()
            with self.spool.transaction() as db:
                db.executemany(
                    "INSERT INTO assembly_parts (sender, sha256, offset, length) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    [(s, h, o, n) for (s, h, o), n in written.items()],
                )
                for sender, sha256 in {(s, h) for s, h, _ in written}:
                    db.execute(
                        "UPDATE assemblies SET progress_at = ?, chunk_at = ? "
                        "WHERE sender = ? AND abandoned_at IS NULL AND instr(body, ?) > 0",
                        (now, now, sender, sha256.encode("ascii")),
                    )
        return results

    def _wanted(self, sender: str, sha256: str, offset: int) -> bool:
        """Whether a chunk is to be written: not written before, and waited for."""
        if (self.done / sha256).exists() or self.spool.read(
            "SELECT 1 FROM assembly_parts WHERE sender = ? AND sha256 = ? AND offset = ?",
            (sender, sha256, offset),
        ):
            return False  # a chunk delivered twice is written once
        if not self._waited_for(sender, sha256):
            # asked for by an assembly finished or abandoned since: nothing to write it into
            log.info(
                "inbox.chunk_unwanted", agency=self.config.agency, sha256=sha256, sender=sender
            )
            return False
        return True

    def _waited_for(self, sender: str, sha256: str) -> bool:
        """Whether an active assembly from ``sender`` waits for attachment ``sha256``."""
        return bool(
            self.spool.read(
                "SELECT 1 FROM assemblies WHERE sender = ? AND abandoned_at IS NULL "
                "AND instr(body, ?) > 0 LIMIT 1",
                (sender, sha256.encode("ascii")),
            )
        )

    def _part(self, sender: str, sha256: str) -> Path:
        return self.parts / part_name(sender, sha256)

    # -- progress ---------------------------------------------------------------------

    def pump(self) -> int:
        """Check what came, finish what is complete, ask for what is missing; returns how many
        documents were completed (recorded for the DMS)."""
        self._prepare()
        rows = self.spool.read(
            "SELECT message_id, sender, addressee, document_id, headers, body, asked, "
            "progress_at, max(started_at, coalesce(chunk_at, 0)) FROM assemblies "
            "WHERE abandoned_at IS NULL ORDER BY started_at"
        )
        completed = 0
        timeout = self.config.assembly_timeout_hours * 3600
        for row in rows:
            message_id, sender, addressee, document_id, headers, body, asked, progress, moved = row
            assert isinstance(message_id, str) and isinstance(sender, str)
            assert isinstance(body, bytes) and isinstance(asked, str)
            assert isinstance(headers, str) and isinstance(addressee, str)
            assert isinstance(progress, float) and isinstance(moved, float)
            if self.store.is_recorded(t.TYPE_DOCUMENT, message_id):
                # recorded for the DMS, and killed before the assembly was dropped
                with self.spool.transaction() as db:
                    db.execute("DELETE FROM assemblies WHERE message_id = ?", (message_id,))
                continue
            document = decode_message(body, expect=t.TYPE_DOCUMENT)
            assert isinstance(document, Document)
            if time.time() - moved > timeout:
                self.abandon(
                    [message_id],
                    f"no chunk came for {self.config.assembly_timeout_hours:g} h "
                    "(assembly_timeout_hours)",
                )
                continue
            waiting: dict[str, list[int]] = json.loads(asked)
            complete = True
            requests: list[ChunkRequest] = []
            for a in document.chunked_attachments():
                parts = self._parts(sender, a.sha256)
                if self._finished(sender, a, parts):
                    waiting.pop(a.sha256, None)
                    continue
                complete = False
                request = self._next_request(sender, a, parts, waiting, progress)
                if request is not None:
                    requests.append(request)
            if complete:
                self.store.record(
                    [
                        NewItem(
                            kind=t.TYPE_DOCUMENT,
                            message_id=message_id,
                            addressee=addressee,
                            body=body,
                            document_id=document_id if isinstance(document_id, str) else None,
                            headers=json.loads(headers),
                        )
                    ]
                )
                with self.spool.transaction() as db:
                    db.execute("DELETE FROM assemblies WHERE message_id = ?", (message_id,))
                log.info(
                    "inbox.assembled",
                    agency=self.config.agency,
                    message_id=message_id,
                    document_id=document_id,
                )
                completed += 1
                continue
            if requests:
                self._ask(message_id, sender, requests, waiting)
        self.blobs.tick()
        return completed

    # -- giving up --------------------------------------------------------------------

    def refused(self, refusal: ChunkRefused) -> None:
        """The relay gave up the transfer (``chunk_refused``): abandon every assembly from its
        sender that waits for its attachment, and those it names."""
        self._prepare()
        named = set(refusal.message_ids)
        rows = self.spool.read(
            "SELECT message_id, sender, body FROM assemblies WHERE abandoned_at IS NULL"
        )
        doomed = [
            str(message_id)
            for message_id, sender, body in rows
            if message_id in named
            or (
                sender == refusal.sender
                and isinstance(body, bytes)
                and refusal.sha256 in chunked_shas(body)
            )
        ]
        self.abandon(doomed, f"the hub gave the transfer up: {refusal.reason}")

    def abandon(self, message_ids: list[str], reason: str) -> int:
        """Give these assemblies up: never hand them over, and let their parts go (the next
        sweep deletes the files and ``assembly_parts`` rows). The row stays, marked, as the
        record of it. Returns how many were abandoned (an assembly abandoned before is not
        again)."""
        self._prepare()
        abandoned = 0
        now = time.time()
        for message_id in message_ids:
            with self.spool.transaction() as db:
                row = db.execute(
                    "SELECT sender, document_id, body FROM assemblies "
                    "WHERE message_id = ? AND abandoned_at IS NULL",
                    (message_id,),
                ).fetchone()
                if row is None:
                    continue
                db.execute(
                    "UPDATE assemblies SET abandoned_at = ?, abandon_reason = ? "
                    "WHERE message_id = ?",
                    (now, reason, message_id),
                )
            sender, document_id, body = row
            abandoned += 1
            log.error(
                "inbox.assembly_abandoned",
                agency=self.config.agency,
                message_id=message_id,
                document_id=document_id,
                sender=sender,
                bytes=sum(self._size_of(body)),
                reason=reason,
                action="the document was not handed to the DMS and its partial bytes are "
                "deleted; the hub reports the failed delivery to the sender (delivery_failed) "
                "when its own transfer timeout passes; the sender must send it again",
            )
        if abandoned:
            self.blobs.soon()
        return abandoned

    @staticmethod
    def _size_of(body: bytes) -> list[int]:
        try:
            document = decode_message(body, expect=t.TYPE_DOCUMENT)
        except InvalidMessage:
            return []
        assert isinstance(document, Document)
        return [a.size for a in document.chunked_attachments()]

    def _parts(self, sender: str, sha256: str) -> list[tuple[int, int]]:
        """(offset, length) of the chunks of ``sha256`` written, by offset."""
        rows = self.spool.read(
            "SELECT offset, length FROM assembly_parts WHERE sender = ? AND sha256 = ? "
            "ORDER BY offset",
            (sender, sha256),
        )
        return [(int(str(o)), int(str(n))) for o, n in rows]

    def _finished(self, sender: str, a: Attachment, parts: list[tuple[int, int]]) -> bool:
        """Whether attachment ``a`` is whole in ``in/``; checks and moves it there when every
        byte has come (a file that does not match is thrown away and asked for again)."""
        final = self.done / a.sha256
        if final.exists():
            return True
        if _covered(parts) < a.size:
            return False
        part = self._part(sender, a.sha256)
        part.touch()  # an empty attachment has no chunk
        digest = hashlib.sha256()
        size = 0
        with open(part, "rb") as f:
            while block := f.read(1024 * 1024):
                digest.update(block)
                size += len(block)
        if size != a.size or digest.hexdigest() != a.sha256:
            log.error(
                "inbox.attachment_mismatch",
                agency=self.config.agency,
                sha256=a.sha256,
                size=size,
                expected_size=a.size,
                action="the parts are thrown away and the chunks asked for again",
            )
            part.unlink(missing_ok=True)
            self._forget(sender, a.sha256)
            return False
        os.replace(part, final)
        _fsync_dir(self.done)
        self._forget(sender, a.sha256)
        return True

    def _forget(self, sender: str, sha256: str) -> None:
        with self.spool.transaction() as db:
            db.execute(
                "DELETE FROM assembly_parts WHERE sender = ? AND sha256 = ?", (sender, sha256)
            )

    def _next_request(
        self,
        sender: str,
        a: Attachment,
        parts: list[tuple[int, int]],
        waiting: dict[str, list[int]],
        progress: float,
    ) -> ChunkRequest | None:
        """The next request for ``a``'s chunks, if one is due. ``waiting[sha256]`` is
        ``[from_offset, count]`` of the last request: the next one goes out when half of it
        has come (so chunks keep flowing), or after ``chunk_retry_seconds`` without any, from
        the first byte missing."""
        window = self.config.chunk_window
        last = waiting.get(a.sha256)
        stale = time.time() - progress > self.config.chunk_retry_seconds
        if last is None or stale:
            start = _covered(parts)
        else:
            since = [(o, n) for o, n in parts if o + n > last[0]]
            if len(since) * 2 < last[1]:
                return None
            start = max(o + n for o, n in since)
            if start >= a.size:
                if not stale:
                    return None
                start = _covered(parts)
        waiting[a.sha256] = [start, window]
        return ChunkRequest(sender=sender, sha256=a.sha256, from_offset=start, count=window)

    def _ask(
        self,
        message_id: str,
        sender: str,
        requests: list[ChunkRequest],
        waiting: dict[str, list[int]],
    ) -> None:
        with self.spool.transaction() as db:
            for request in requests:
                Spool.insert(
                    db,
                    NewMessage(
                        message_id=str(uuid.uuid4()),
                        message_type=TYPE_CHUNK_REQUEST,
                        body=request.model_dump_json(by_alias=True).encode("utf-8"),
                    ),
                )
            db.execute(
                "UPDATE assemblies SET asked = ?, progress_at = ? WHERE message_id = ?",
                (json.dumps(waiting), time.time(), message_id),
            )


def _covered(parts: list[tuple[int, int]]) -> int:
    """How many bytes from the start are here without a gap."""
    end = 0
    for offset, length in parts:
        if offset > end:
            break
        end = max(end, offset + length)
    return end


def _header(headers: Mapping[str, object], name: str) -> str | None:
    value = headers.get(name)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else None


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- hand-over: the document file, its attachments streamed in from disk -------------------

_B64_BLOCK: Final = 3 * 1024 * 1024  # a multiple of 3: base64 of blocks joins up
# Entries of zips written here get a fixed date, as in adapters.edxml.attachments.
_ZIP_DATE: Final = (1980, 1, 1, 0, 0, 0)


def is_chunked(item: ReceivedItem) -> bool:
    """Whether a received item is a document whose attachments came in chunks."""
    return item.kind == t.TYPE_DOCUMENT and _CHUNKED.search(item.body) is not None


def write_document(
    render: Callable[[Document, Mapping[str, object]], bytes],
    item: ReceivedItem,
    path: Path,
    config: AdapterConfig,
) -> None:
    """Write the document file of ``item`` to ``path`` and fsync it: ``render`` writes the
    document with a small placeholder per attachment, and each placeholder is replaced, as the
    file is written, by the attachment's bytes read from ``.lienthong-blobs/in/`` (base64; in
    edXML as a zip holding the file, stored, as the standard has it). Memory stays bounded
    whatever the attachments' size. ValueError if the format cannot express the document."""
    document = item.message()
    assert isinstance(document, Document)
    done = config.blobs_dir / "in"
    attachments: list[Attachment] = []
    placeholders: list[tuple[Attachment, bytes]] = []
    for i, a in enumerate(document.attachments):
        if a.transfer != TRANSFER_CHUNKS:
            attachments.append(a)
            continue
        raw = f"lienthong-placeholder-{i}-{uuid.uuid4()}".encode("ascii")
        fields = a.model_dump() | {"data": base64.b64encode(raw).decode("ascii")}
        attachments.append(Attachment.model_construct(**fields | {"transfer": "inline"}))
        placeholders.append((a, raw))
    data = render(document.model_copy(update={"attachments": attachments}), item.headers)
    # Where each attachment goes: its placeholder as the format wrote it.
    cuts: list[tuple[int, int, Attachment, bool]] = []  # (start, end, attachment, zipped)
    for a, raw in placeholders:
        for token, zipped in (
            (base64.b64encode(raw), False),
            (encode_attachment(a.name, raw).encode("ascii"), True),
        ):
            at = data.find(token)
            if at >= 0:
                cuts.append((at, at + len(token), a, zipped))
                break
        else:
            raise ValueError(f"attachment {a.name!r}: the format wrote it in an unknown way")
    cuts.sort(key=lambda c: c[0])
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(fd, "wb") as out:
        at = 0
        for start, end, a, zipped in cuts:
            out.write(data[at:start])
            source = done / a.sha256
            if zipped:
                with tempfile.TemporaryFile(dir=done) as archive:
                    _zip_stored(a.name, source, archive)
                    archive.seek(0)
                    _base64_into(archive, out)
            else:
                with open(source, "rb") as f:
                    _base64_into(f, out)
            at = end
        out.write(data[at:])
        out.flush()
        os.fsync(out.fileno())


def _base64_into(source: IO[bytes], out: IO[bytes]) -> None:
    while block := source.read(_B64_BLOCK):
        out.write(base64.b64encode(block))


def _zip_stored(name: str, source: Path, archive: IO[bytes]) -> None:
    base = name.replace("\\", "/").rsplit("/", 1)[-1] or "attachment"
    info = zipfile.ZipInfo(base, date_time=_ZIP_DATE)
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    with (
        zipfile.ZipFile(archive, "w") as z,
        z.open(info, "w", force_zip64=True) as dst,
        open(source, "rb") as f,
    ):
        while block := f.read(1024 * 1024):
            dst.write(block)
