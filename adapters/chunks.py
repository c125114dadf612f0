"""Sending a large document in chunks (issue 17): the sender's adapter.

An edXML file in ``outbox/`` larger than ``chunk_threshold_bytes`` is read from disk
(:mod:`adapters.edxml.stream`): each attachment is decoded into
``<root>/.lienthong-blobs/out/<sha256>``. One spool transaction then holds a row per chunk
(``chunk``, whose body is only a reference: the bytes are read from the file when published)
followed by the document itself, whose attachments say ``transfer = "chunks"``. The spool
publishes in order with confirms, so the relay holds every chunk before it reads the document;
a crash at any point publishes the rest again, and the relay stores a chunk once.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from adapters import blobs
from adapters.config import AdapterConfig
from adapters.edxml.errors import EdxmlError
from adapters.edxml.stream import (
    StagedFile,
    StreamedPackage,
    StreamLimits,
    read_package_streaming,
)
from adapters.formats.base import FormatError
from adapters.spool import NewMessage, Outgoing, Spool
from schemas import Attachment, Document
from schemas.chunks import TYPE_CHUNK, ChunkHeader, chunk_offsets, encode_chunk
from schemas.document import TRANSFER_CHUNKS
from schemas.envelope import encode_message

#: Namespace of the message ids of chunk rows (derived from the document's id: sent again
#: after a crash, a chunk keeps its id).
CHUNK_NAMESPACE: Final = uuid.UUID("0b6c8f3e-7a51-4c2d-9e84-5d1f2a3b4c6d")


def streams(config: AdapterConfig, path: Path) -> bool:
    """Whether the outbox file at ``path`` is read from disk and its attachments sent in
    chunks (large edXML; a large JSON file is read whole, :func:`stage_document`)."""
    if path.suffix.lower() != ".edxml":
        return False
    try:
        return path.stat().st_size > config.chunk_threshold_bytes
    except FileNotFoundError:
        return False


def outgoing_dir(config: AdapterConfig) -> Path:
    return config.blobs_dir / "out"


def submit_streamed(config: AdapterConfig, spool: Spool, path: Path) -> tuple[Outgoing, bool]:
    """Read, stage and spool a large edXML file; FormatError says what is wrong.

    Returns (entry, created) like :func:`adapters.outbox.submit`: the same file spooled before
    is recognised by its name and SHA-256 and not sent twice.
    """
    with staged(config, path) as package:
        key = f"{path.name}:{package.file_sha256}"
        earlier = spool.find_source(key)
        if earlier is not None:
            return earlier, False
        return spool_package(config, spool, package, key), True


@contextmanager
def staged(config: AdapterConfig, path: Path) -> Iterator[StreamedPackage]:
    """The edXML file at ``path`` read from disk, its attachments decoded into a staging
    folder under ``.lienthong-blobs/`` (removed when the block ends); FormatError says what is
    wrong with the file."""
    # The broker thread creates .lienthong-blobs/ when it first connects: not before a file
    # dropped while the broker is down (mkdtemp's FileNotFoundError read as "file gone").
    config.blobs_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=config.blobs_dir))
    try:
        limits = StreamLimits(max_file_bytes=config.max_package_bytes)
        try:
            package = read_package_streaming(path, staging, limits)
        except EdxmlError as e:
            raise FormatError("; ".join(e.reasons)) from e
        yield package
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def stage_document(config: AdapterConfig, document: Document, file_sha256: str) -> StreamedPackage:
    """A document read whole (a JSON outbox file above ``chunk_threshold_bytes``, held in
    memory up to ``max_file_bytes`` like any JSON file) made ready to send in chunks: each
    inline attachment is decoded into a staging folder under ``.lienthong-blobs/`` and becomes
    ``transfer = "chunks"``, so that no message is larger than a chunk (RabbitMQ 4.x refuses
    messages over 16 MiB). :func:`spool_package` then moves the files to ``out/``; a staging
    folder left by a crash is removed by the sweep (:mod:`adapters.blobs`)."""
    config.blobs_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=config.blobs_dir))
    files: dict[str, StagedFile] = {}
    attachments: list[Attachment] = []
    for a in document.attachments:
        if a.transfer == TRANSFER_CHUNKS:
            attachments.append(a)
            continue
        if a.sha256 not in files:
            path = staging / a.sha256
            path.write_bytes(a.content())
            files[a.sha256] = StagedFile(path=path, size=a.size, sha256=a.sha256)
        attachments.append(
            Attachment.model_validate(a.model_dump() | {"data": "", "transfer": TRANSFER_CHUNKS})
        )
    return StreamedPackage(
        document=document.model_copy(update={"attachments": attachments}),
        files=files,
        file_sha256=file_sha256,
    )


def spool_package(
    config: AdapterConfig, spool: Spool, package: StreamedPackage, key: str
) -> Outgoing:
    """Move a staged package's attachments to ``out/`` and spool, in one transaction, a row per
    chunk followed by the document (``key``: its spool source key)."""
    out = outgoing_dir(config)
    out.mkdir(parents=True, exist_ok=True)
    document = package.document
    message_id = str(uuid.uuid4())
    rows: list[NewMessage] = []
    for a in document.chunked_attachments():
        for offset in chunk_offsets(a.size, config.chunk_bytes):
            length = min(config.chunk_bytes, a.size - offset)
            ref = {"sha256": a.sha256, "size": a.size, "offset": offset, "length": length}
            rows.append(
                NewMessage(
                    message_id=str(
                        uuid.uuid5(CHUNK_NAMESPACE, f"{message_id}/{a.sha256}/{offset}")
                    ),
                    message_type=TYPE_CHUNK,
                    body=json.dumps(ref).encode("ascii"),
                    document_id=document.document_id,
                )
            )
    rows.append(
        NewMessage(
            message_id=message_id,
            message_type="document",
            body=encode_message(document),
            document_id=document.document_id,
            source_key=key,
        )
    )
    blobs.ensure_schema(spool)
    # out/<sha256> is kept until the relay's receipt of this document (adapters/blobs.py);
    # the sweep does not look at out/ between the move and the commit.
    with blobs.OUT_LOCK:
        for sha256, file in package.files.items():
            os.replace(file.path, out / sha256)  # content-addressed: the same bytes, once
        with spool.transaction() as db:
            for row in rows:
                Spool.insert(db, row)
            blobs.record_outgoing(db, message_id, sorted(package.files))
    entry = spool.get(message_id)
    assert entry is not None
    for file in package.files.values():  # a staging folder of stage_document, now empty
        with contextlib.suppress(OSError):
            file.path.parent.rmdir()
    return entry


def wire_body(config: AdapterConfig, row: Outgoing) -> bytes:
    """The AMQP body of a spool row: a chunk's bytes are read from its file now."""
    if row.message_type != TYPE_CHUNK:
        return row.body
    header = ChunkHeader.model_validate(json.loads(row.body))
    with open(outgoing_dir(config) / header.sha256, "rb") as f:
        f.seek(header.offset)
        data = f.read(header.length)
    return encode_chunk(header, data)


def bounded(config: AdapterConfig, rows: list[Outgoing]) -> list[Outgoing]:
    """The first rows of a publish batch, with at most 16 chunks (their bytes are in memory
    until confirmed)."""
    kept: list[Outgoing] = []
    chunks = 0
    for row in rows:
        if row.message_type == TYPE_CHUNK:
            chunks += 1
            if chunks > 16 and kept:
                break
        kept.append(row)
    return kept
