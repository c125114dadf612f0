"""Large edXML packages for the chunked-transfer tests and benchmark (issue 17).

Packages are written and read back in blocks: a 1 GB attachment never sits in memory here
either, so the test process does not blur the adapters' and the relay's memory figures.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from pathlib import Path

from sqlalchemy import Engine, text

from schemas import Attachment
from schemas.chunks import ChunkHeader, ChunkRequest, encode_chunk
from schemas.envelope import encode_message
from tests.relay_support import Agency, make_document

SAMPLE = Path(__file__).resolve().parent / "data" / "edxml" / "document_new.edxml"
_BLOCK = 3 * 1024 * 1024
_TEXT = re.compile(rb"(<edXML:ContentTransferEncoded[^>]*>)[^<]+(</edXML:ContentTransferEncoded>)")


def random_file(path: Path, size: int) -> str:
    """``size`` incompressible bytes at ``path``; returns their SHA-256."""
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            block = os.urandom(min(left, 4 * 1024 * 1024))
            digest.update(block)
            f.write(block)
            left -= len(block)
    return digest.hexdigest()


def write_package(
    path: Path, attachment: Path, *, sender: str, recipients: list[str], number: str
) -> None:
    """The national-axis sample ``document_new.edxml`` with ``attachment`` as its only file
    (base64, not zipped: scanned PDFs do not compress), ``sender`` as From and ``recipients``
    as To. Written in blocks."""
    text = SAMPLE.read_text(encoding="utf-8")
    text = text.replace("000.00.00.G22", sender).replace("1234/VPCP-KSTT", f"{number}/VPCP-KSTT")
    to = re.search(r"<edXML:To>.*?</edXML:To>", text, re.S)
    assert to is not None
    tos = "".join(to.group(0).replace("000.00.00.H26", r) for r in recipients)
    text = text[: to.start()] + tos + text[to.end() :]
    text = re.sub(
        r"<edXML:To>(?:(?!</edXML:To>).)*000\.00\.00\.H29.*?</edXML:To>", "", text, flags=re.S
    )
    data = text.encode("utf-8")
    m = _TEXT.search(data)
    assert m is not None
    with open(path, "wb") as out, open(attachment, "rb") as f:
        out.write(data[: m.end(1)])
        while block := f.read(_BLOCK):
            out.write(base64.b64encode(block))
        out.write(data[m.start(2) :])


def json_attachment_to_file(document: Path, target: Path) -> dict[str, object]:
    """The first attachment of a received JSON document file, decoded into ``target`` in
    blocks; returns the attachment's other fields (name, size, sha256…)."""
    with open(document, "rb") as f:
        head = f.read(1024 * 1024)
        key = head.find(b'"data": "')
        assert key >= 0, "no attachment data in the file"
        start = key + len(b'"data": "')
        f.seek(start)
        rest = b""
        with open(target, "wb") as out:
            while True:
                block = f.read(_BLOCK)
                end = block.find(b'"')
                chunk = rest + (block if end < 0 else block[:end])
                cut = len(chunk) - len(chunk) % 4 if end < 0 else len(chunk)
                out.write(base64.b64decode(chunk[:cut]))
                rest = chunk[cut:]
                if end >= 0:
                    break
        f.seek(start)
        # The fields before "data" (the JSON writer puts them first).
        fields_text = head[head.rfind(b"{", 0, key) : key].rstrip().rstrip(b",") + b"}"
    fields: dict[str, object] = json.loads(fields_text)
    return fields


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(4 * 1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


# -- the chunked wire, as an adapter sends it (relay-side tests) --------------------------


def chunk_messages(data: bytes, size: int) -> list[bytes]:
    sha = hashlib.sha256(data).hexdigest()
    return [
        encode_chunk(
            ChunkHeader(sha256=sha, size=len(data), offset=o, length=len(data[o : o + size])),
            data[o : o + size],
        )
        for o in range(0, len(data), size)
    ]


def chunked_document(sender: Agency, recipient: Agency, data: bytes) -> bytes:
    document = make_document(sender.code, [recipient.code])
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


def chunk_request(sender: Agency, data: bytes, from_offset: int = 0, count: int = 8) -> bytes:
    request = ChunkRequest(
        sender=sender.code,
        sha256=hashlib.sha256(data).hexdigest(),
        from_offset=from_offset,
        count=count,
    )
    return request.model_dump_json(by_alias=True).encode()


def stored_chunks(db: Engine, agency: Agency) -> tuple[int, int]:
    with db.connect() as conn:
        count, total = conn.execute(
            text(
                "SELECT count(*), coalesce(sum(length), 0) FROM blob_chunks WHERE submitted_by = :a"
            ),
            {"a": agency.code},
        ).one()
    return int(count), int(total)
