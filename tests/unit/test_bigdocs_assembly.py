"""The recipient's side of the chunked transfer (issue 17), on a real spool in a temp folder."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from adapters.assembly import Assembler, is_chunked, write_document
from adapters.config import AdapterConfig
from adapters.edxml import parse_document
from adapters.formats.registry import get_format
from adapters.inbox import Action, Delivery, InboxRecorder
from adapters.received import ReceivedStore
from adapters.spool import Spool
from schemas import Attachment
from schemas import topology as t
from schemas.chunks import TYPE_CHUNK, TYPE_CHUNK_REQUEST, ChunkHeader, encode_chunk
from schemas.envelope import encode_message
from tests.adapter_support import make_document

MiB = 1024 * 1024
A, B = "000.00.00.G22", "000.00.00.H26"
DELIVERY = "delivery-1"


@pytest.fixture
def config(tmp_path: Path) -> AdapterConfig:
    config = AdapterConfig(
        agency=B,
        amqp_url="amqp://127.0.0.1:5672/lienthong",
        root=tmp_path / "root",
        chunk_window=4,
    )
    config.ensure_folders()
    return config


@pytest.fixture
def spool(config: AdapterConfig) -> Spool:
    return Spool(config.spool_path)


def _manifest(data: bytes) -> bytes:
    document = make_document(A, [B])
    document.attachments = [
        Attachment(
            name="scan.pdf",
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            data="",
            transfer="chunks",
        )
    ]
    return encode_message(document)


def _chunks(data: bytes, size: int = MiB) -> list[bytes]:
    sha = hashlib.sha256(data).hexdigest()
    return [
        encode_chunk(
            ChunkHeader(
                sha256=sha, size=len(data), offset=o, length=len(data[o : o + size]), sender=A
            ),
            data[o : o + size],
        )
        for o in range(0, len(data), size)
    ]


def _requests(spool: Spool) -> list[dict[str, object]]:
    return [json.loads(r.body) for r in spool.unsent(1000) if r.message_type == TYPE_CHUNK_REQUEST]


def _start(assembler: Assembler, data: bytes) -> None:
    headers = {t.HEADER_SENDER: A, t.HEADER_RECIPIENT: B}
    body = _manifest(data)
    assert assembler.takes("document", body)
    assert assembler.take(DELIVERY, "document", body, headers)


def test_a_half_received_document_is_never_recorded_for_the_dms(
    config: AdapterConfig, spool: Spool
) -> None:
    data = os.urandom(3 * MiB + 5)
    store = ReceivedStore(spool)
    assembler = Assembler(config, spool, store)
    _start(assembler, data)
    assert assembler.pump() == 0
    [request] = _requests(spool)
    assert request["from_offset"] == 0 and request["count"] == 4 and request["sender"] == A
    pieces = _chunks(data)
    for body in pieces[:3]:
        assert assembler.take("c", TYPE_CHUNK, body, {})
    assert assembler.pump() == 0
    assert store.count_pending("document") == 0
    assert assembler.take("c", TYPE_CHUNK, pieces[3], {})
    assert assembler.pump() == 1
    [item] = store.pending("document")
    assert item.message_id == DELIVERY and is_chunked(item)
    assert (config.blobs_dir / "in" / hashlib.sha256(data).hexdigest()).read_bytes() == data


def test_a_chunk_delivered_twice_is_written_once(config: AdapterConfig, spool: Spool) -> None:
    data = os.urandom(2 * MiB)
    assembler = Assembler(config, spool, ReceivedStore(spool))
    _start(assembler, data)
    first, _second = _chunks(data)
    assert assembler.take("c1", TYPE_CHUNK, first, {})
    [part] = list((config.blobs_dir / "parts").iterdir())
    with open(part, "r+b") as f:  # mark the written bytes: a second write would undo this
        f.write(b"MARK")
    assert assembler.take("c1-again", TYPE_CHUNK, first, {})
    assert part.read_bytes()[:4] == b"MARK"


def test_bytes_that_do_not_match_the_sha256_are_thrown_away_and_asked_for_again(
    config: AdapterConfig, spool: Spool
) -> None:
    data = os.urandom(2 * MiB)
    store = ReceivedStore(spool)
    assembler = Assembler(config, spool, store)
    _start(assembler, data)
    assembler.pump()
    forged = bytearray(data)
    forged[10] ^= 0xFF
    sha = hashlib.sha256(data).hexdigest()
    for body in _chunks(bytes(forged)):
        body = body.replace(hashlib.sha256(bytes(forged)).hexdigest().encode(), sha.encode())
        assert assembler.take("c", TYPE_CHUNK, body, {})
    assert assembler.pump() == 0
    assert store.count_pending("document") == 0
    assert not list((config.blobs_dir / "parts").iterdir())
    for body in _chunks(data):
        assembler.take("c", TYPE_CHUNK, body, {})
    assert assembler.pump() == 1


@pytest.mark.parametrize("fmt", ["json", "edxml"])
def test_the_dms_file_carries_the_attachment_streamed_from_disk(
    config: AdapterConfig, spool: Spool, tmp_path: Path, fmt: str
) -> None:
    data = os.urandom(MiB + 3)
    store = ReceivedStore(spool)
    assembler = Assembler(config, spool, store)
    _start(assembler, data)
    for body in _chunks(data):
        assembler.take("c", TYPE_CHUNK, body, {})
    assembler.pump()
    [item] = store.pending("document")
    target = tmp_path / f"out.{fmt}"
    file_format = get_format(fmt)
    write_document(file_format.write_delivered_document, item, target, config)
    if fmt == "json":
        [attachment] = json.loads(target.read_bytes())["attachments"]
        got = Attachment.model_validate(attachment)
    else:
        [got] = parse_document(target.read_bytes()).attachments
    assert got.content() == data and got.sha256 == hashlib.sha256(data).hexdigest()
    assert got.transfer == "inline"


def test_a_batch_of_chunks_is_fsynced_once_per_file_and_acked_together(
    config: AdapterConfig, spool: Spool, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(3 * MiB + 1)
    recorder = InboxRecorder(config, spool)
    _start(recorder.assembler, data)
    pieces = _chunks(data)
    fsynced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        fsynced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr("adapters.assembly.os.fsync", fsync)
    batch = [Delivery(f"c{i}", TYPE_CHUNK, body) for i, body in enumerate(pieces)]
    batch.append(Delivery("c0-again", TYPE_CHUNK, pieces[0]))  # a redelivered copy
    assert recorder.handle_batch(batch) == [Action.ACK] * len(batch)
    assert len(fsynced) == 1  # one part file, fsynced once for the whole batch
    [(rows,)] = spool.read("SELECT count(*) FROM assembly_parts")
    assert rows == len(pieces)
    assert recorder.assembler.pump() == 1
    assert (config.blobs_dir / "in" / hashlib.sha256(data).hexdigest()).read_bytes() == data
