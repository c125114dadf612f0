"""Chunks on the wire (issue 17): their format, and every message below 16 MiB."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from adapters import chunks
from adapters.config import AdapterConfig
from adapters.outbox import OutboxScanner
from adapters.spool import Spool
from schemas import Attachment, Document
from schemas.chunks import (
    MAX_CHUNK_BYTES,
    TYPE_CHUNK,
    ChunkHeader,
    InvalidChunk,
    decode_chunk,
    encode_chunk,
)
from schemas.envelope import decode_message, encode_message
from tests.adapter_support import make_document
from tests.bigdocs_support import random_file, write_package

MiB = 1024 * 1024
#: RabbitMQ 4.x refuses larger messages by default (``max_message_size``).
RABBITMQ_4_MAX_MESSAGE = 16 * MiB
SHA = "ab" * 32


def test_a_chunk_is_its_header_line_then_its_raw_bytes() -> None:
    header = ChunkHeader(sha256=SHA, size=10, offset=4, length=3, sender="000.00.00.G22")
    body = encode_chunk(header, b"xyz")
    assert body.endswith(b"\nxyz")
    decoded, data = decode_chunk(body)
    assert decoded == header
    assert bytes(data) == b"xyz"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"no header at all", "no header line"),
        (
            b'{"schema": "lienthong.chunk/1", "sha256": "' + SHA.encode() + b'", "size": 10, '
            b'"offset": 8, "length": 3}\nxyz',
            "ends past",
        ),
        (
            b'{"schema": "lienthong.chunk/1", "sha256": "' + SHA.encode() + b'", "size": 10, '
            b'"offset": 0, "length": 4}\nxyz',
            "header says 4",
        ),
    ],
)
def test_a_broken_chunk_is_refused_saying_why(body: bytes, reason: str) -> None:
    with pytest.raises(InvalidChunk, match=reason):
        decode_chunk(body)


def test_the_largest_chunk_fits_rabbitmq_4s_default_message_size() -> None:
    header = ChunkHeader(
        sha256=SHA,
        size=2**40,
        offset=2**40 - MAX_CHUNK_BYTES,
        length=MAX_CHUNK_BYTES,
        sender="x" * 100,
    )
    assert len(encode_chunk(header, bytes(MAX_CHUNK_BYTES))) < RABBITMQ_4_MAX_MESSAGE


def test_every_message_a_large_package_becomes_is_below_16_mib(tmp_path: Path) -> None:
    """A 20 MiB attachment with the largest chunk size: each spooled message, as published."""
    config = AdapterConfig(
        agency="000.00.00.G22",
        amqp_url="amqp://127.0.0.1:5672/lienthong",
        root=tmp_path / "root",
        chunk_threshold_bytes=MiB,
        chunk_bytes=MAX_CHUNK_BYTES,
    )
    config.ensure_folders()
    original = tmp_path / "scan.bin"
    random_file(original, 20 * MiB + 7)
    package = config.outbox / "big.edxml"
    write_package(package, original, sender=config.agency, recipients=["000.00.00.H26"], number="1")
    assert package.stat().st_size > RABBITMQ_4_MAX_MESSAGE
    assert chunks.streams(config, package)
    with Spool(config.spool_path) as spool:
        entry, created = chunks.submit_streamed(config, spool, package)
        again, created_again = chunks.submit_streamed(config, spool, package)
        rows = spool.unsent(10_000)
    assert created and not created_again and again.message_id == entry.message_id
    bodies = [(row.message_type, chunks.wire_body(config, row)) for row in rows]
    assert [t for t, _ in bodies] == [TYPE_CHUNK] * 6 + ["document"]
    assert max(len(b) for _, b in bodies) < RABBITMQ_4_MAX_MESSAGE
    rebuilt = bytearray()
    for _kind, body in bodies[:-1]:
        header, data = decode_chunk(body)
        assert header.offset == len(rebuilt)
        rebuilt += data
    assert bytes(rebuilt) == original.read_bytes()
    document = decode_message(bodies[-1][1], expect="document")
    [attachment] = document.attachments  # type: ignore[union-attr]
    assert (attachment.transfer, attachment.size) == ("chunks", len(rebuilt))
    assert len(bodies[-1][1]) < 64 * 1024
    assert json.loads(rows[0].body)["length"] == MAX_CHUNK_BYTES  # a reference, not the bytes


def test_a_large_json_outbox_file_sends_its_attachments_in_chunks_too(tmp_path: Path) -> None:
    """A JSON document of 20 MiB (a 14 MiB attachment, base64 inline) would be one message
    over RabbitMQ 4.x's default limit; above chunk_threshold_bytes it is chunked as edXML is."""
    config = AdapterConfig(
        agency="000.00.00.G22",
        amqp_url="amqp://127.0.0.1:5672/lienthong",
        root=tmp_path / "root",
        chunk_threshold_bytes=MiB,
    )
    config.ensure_folders()
    scan = os.urandom(14 * MiB + 3)
    document = make_document(config.agency, ["000.00.00.H26"])
    document.attachments = [
        Attachment.from_bytes("scan.pdf", scan, "application/pdf"),
        Attachment.from_bytes("note.txt", b"small", "text/plain"),
    ]
    path = config.outbox / "big.json"
    path.write_bytes(encode_message(document))
    assert path.stat().st_size > RABBITMQ_4_MAX_MESSAGE
    with Spool(config.spool_path) as spool:
        scanner = OutboxScanner(config, spool)
        taken = scanner.take(path)
        assert taken is not None and taken.entry is not None and taken.created, taken
        rows = spool.unsent(10_000)
        path.write_bytes(encode_message(document))  # the same file dropped again
        again = scanner.take(path)
        assert again is not None and again.entry == taken.entry and not again.created
        assert spool.unsent(10_000) == rows
    bodies = [(row.message_type, chunks.wire_body(config, row)) for row in rows]
    assert [t for t, _ in bodies] == [TYPE_CHUNK] * 16 + ["document"]
    assert max(len(b) for _, b in bodies) < 2 * MiB
    rebuilt: dict[str, bytearray] = {}
    for _kind, body in bodies[:-1]:
        header, data = decode_chunk(body)
        assert header.offset == len(rebuilt.setdefault(header.sha256, bytearray()))
        rebuilt[header.sha256] += data
    sent = decode_message(bodies[-1][1], expect="document")
    assert isinstance(sent, Document)
    assert [(a.name, a.transfer, a.data) for a in sent.attachments] == [
        ("scan.pdf", "chunks", ""),
        ("note.txt", "chunks", ""),
    ]
    assert {a.sha256: bytes(rebuilt[a.sha256]) for a in sent.attachments} == {
        hashlib.sha256(scan).hexdigest(): scan,
        hashlib.sha256(b"small").hexdigest(): b"small",
    }
    assert sorted(os.listdir(config.blobs_dir)) == ["out"]  # no staging folder left


def test_a_small_json_outbox_file_keeps_the_single_message_path(tmp_path: Path) -> None:
    config = AdapterConfig(
        agency="000.00.00.G22",
        amqp_url="amqp://127.0.0.1:5672/lienthong",
        root=tmp_path / "root",
        chunk_threshold_bytes=MiB,
    )
    config.ensure_folders()
    document = make_document(config.agency, ["000.00.00.H26"])
    document.attachments = [Attachment.from_bytes("scan.pdf", b"%PDF" * 1000, "application/pdf")]
    path = config.outbox / "small.json"
    path.write_bytes(encode_message(document))
    with Spool(config.spool_path) as spool:
        taken = OutboxScanner(config, spool).take(path)
        assert taken is not None and taken.entry is not None
        [row] = spool.unsent(10)
    sent = decode_message(row.body, expect="document")
    assert isinstance(sent, Document) and sent.attachments[0].transfer == "inline"
