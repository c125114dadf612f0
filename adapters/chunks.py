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

import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Final

from adapters.config import AdapterConfig
from adapters.edxml.errors import EdxmlError
from adapters.edxml.stream import StreamLimits, read_package_streaming
from adapters.formats.base import FormatError
from adapters.spool import NewMessage, Outgoing, Spool
from schemas.chunks import TYPE_CHUNK, ChunkHeader, chunk_offsets, encode_chunk
from schemas.envelope import encode_message

#: Namespace of the message ids of chunk rows (derived from the document's id: sent again
#: after a crash, a chunk keeps its id).
CHUNK_NAMESPACE: Final = uuid.UUID("0b6c8f3e-7a51-4c2d-9e84-5d1f2a3b4c6d")


def streams(config: AdapterConfig, path: Path) -> bool:
    """Whether the outbox file at ``path`` takes the chunked path (large edXML)."""
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
    out = outgoing_dir(config)
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=config.blobs_dir))
    try:
        limits = StreamLimits(max_file_bytes=config.max_package_bytes)
        try:
            package = read_package_streaming(path, staging, limits)
        except EdxmlError as e:
            raise FormatError("; ".join(e.reasons)) from e
        key = f"{path.name}:{package.file_sha256}"
        earlier = spool.find_source(key)
        if earlier is not None:
            return earlier, False
        for sha256, staged in package.files.items():
            os.replace(staged.path, out / sha256)  # content-addressed: the same bytes, once
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
        with spool.transaction() as db:
            for row in rows:
                Spool.insert(db, row)
        entry = spool.get(message_id)
        assert entry is not None
        return entry, True
    finally:
        shutil.rmtree(staging, ignore_errors=True)


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
