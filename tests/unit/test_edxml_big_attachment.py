"""A real scanned PDF is often bigger than libxml2's default 10 MB cap on one text node."""

from __future__ import annotations

import base64
import io
import os
import zipfile
from pathlib import Path

from adapters.edxml import parse_document

SAMPLE = (
    Path(__file__).resolve().parents[1] / "data" / "edxml" / "document_new.edxml"
).read_bytes()


def test_an_attachment_bigger_than_libxml2s_10_mb_text_cap_is_read() -> None:
    raw = os.urandom(9 * 1024 * 1024)  # base64 of its zip is about 12.6 MB of text
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("scan.pdf", raw)
    text = base64.b64encode(buffer.getvalue())
    start = SAMPLE.index(b">", SAMPLE.index(b"<edXML:ContentTransferEncoded")) + 1
    end = SAMPLE.index(b"</edXML:ContentTransferEncoded>")
    document = parse_document(SAMPLE[:start] + text + SAMPLE[end:])
    assert document.attachments[0].content() == raw
