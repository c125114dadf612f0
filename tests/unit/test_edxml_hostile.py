"""Hostile edXML is refused with a clear reason, quickly, without exhausting memory."""

from __future__ import annotations

import base64
import io
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree

from adapters.edxml import (
    EdxmlError,
    HostileInput,
    Limits,
    parse_document,
    parse_package,
    read_package,
)
from adapters.formats.base import FormatError
from adapters.formats.edxml import EdxmlFormat
from schemas import Document

SAMPLE = (
    Path(__file__).resolve().parents[1] / "data" / "edxml" / "document_new.edxml"
).read_bytes()


@pytest.fixture(autouse=True)
def _under_a_second() -> Iterator[None]:
    started = time.perf_counter()
    yield
    assert time.perf_counter() - started < 1.0


def _with_attachment_text(text: bytes) -> bytes:
    start = SAMPLE.index(b">", SAMPLE.index(b"<edXML:ContentTransferEncoded")) + 1
    end = SAMPLE.index(b"</edXML:ContentTransferEncoded>")
    return SAMPLE[:start] + text + SAMPLE[end:]


def _zipped(raw: bytes, name: str = "x.pdf") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, raw)
    return base64.b64encode(buffer.getvalue())


def test_entity_expansion_is_refused() -> None:
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        + b"".join(
            f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">'.encode() for i in range(1, 10)
        ).replace(b"&lol0;", b"&lol;")
        + b"]><edXML>&lol9;</edXML>"
    )
    with pytest.raises(HostileInput, match="DOCTYPE"):
        parse_package(laughs)


def test_an_external_entity_is_refused() -> None:
    xxe = (
        b'<?xml version="1.0"?><!DOCTYPE edXML [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        b"<edXML>&e;</edXML>"
    )
    with pytest.raises(HostileInput, match="external entities"):
        parse_package(xxe)


def test_a_doctype_in_another_encoding_is_refused_too() -> None:
    data = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE edXML []><edXML/>'.encode("utf-16")
    with pytest.raises(HostileInput, match="DOCTYPE"):
        parse_package(data)


def test_deeply_nested_elements_are_refused() -> None:
    data = b"<edXML>" + b"<a>" * 100 + b"</a>" * 100 + b"</edXML>"
    with pytest.raises(HostileInput, match="nested more than 64 deep"):
        parse_package(data)


def test_nesting_far_beyond_the_parser_limit_is_refused() -> None:
    data = b"<edXML>" + b"<a>" * 1_000_000 + b"</a>" * 1_000_000 + b"</edXML>"
    with pytest.raises(HostileInput):
        parse_package(data)


def test_a_file_over_the_size_limit_is_refused_before_parsing() -> None:
    with pytest.raises(HostileInput, match="over the limit of 1000 bytes"):
        parse_package(SAMPLE, Limits(max_bytes=1000))


def test_a_file_with_too_many_elements_is_refused() -> None:
    data = b"<edXML>" + b"<a/>" * 5_000 + b"</edXML>"
    with pytest.raises(HostileInput, match="more than 1000 elements"):
        parse_package(data, Limits(max_elements=1000))


def test_a_text_node_beyond_the_file_limit_is_refused_before_parsing() -> None:
    data = b"<edXML>" + b"a" * 11_000_000 + b"</edXML>"
    with pytest.raises(HostileInput, match="over the limit of 10000000 bytes"):
        parse_package(data, Limits(max_bytes=10_000_000))


def test_a_zip_bomb_is_refused_by_its_ratio() -> None:
    bomb = _zipped(b"\0" * (8 * 1024 * 1024))
    with pytest.raises(HostileInput, match="zip bomb"):
        parse_document(_with_attachment_text(bomb))


def test_a_zip_that_unpacks_beyond_the_size_cap_is_refused() -> None:
    data = _with_attachment_text(_zipped(b"\0" * 300_000))
    with pytest.raises(HostileInput, match="the limit is 100000 bytes"):
        parse_document(data, Limits(max_attachment_bytes=100_000))


def test_a_zip_that_lies_about_its_size_is_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("x.pdf", b"\0" * 300_000)
    raw = bytearray(buffer.getvalue())
    # Patch the declared uncompressed size (local header offset 22, central directory +24).
    central = raw.rindex(b"PK\x01\x02")
    raw[22:26] = (10).to_bytes(4, "little")
    raw[central + 24 : central + 28] = (10).to_bytes(4, "little")
    data = _with_attachment_text(base64.b64encode(bytes(raw)))
    with pytest.raises(EdxmlError, match=r"cannot be read|more than"):
        parse_document(data, Limits(max_attachment_bytes=100_000))


def test_invalid_base64_is_refused() -> None:
    data = _with_attachment_text(b"this is not base64!!")
    with pytest.raises(EdxmlError, match=r"1234-VPCP-KSTT\.pdf.*not valid base64"):
        parse_document(data)


def test_an_attachment_that_is_not_a_zip_is_kept_as_sent_with_a_warning() -> None:
    # Issue 13: zip or raw is decided by the bytes; raw bytes are kept (not a safety matter).
    data = _with_attachment_text(base64.b64encode(b"%PDF-1.4 plain"))
    reading = read_package(data)
    assert isinstance(reading.package, Document)
    assert reading.package.attachments[0].content() == b"%PDF-1.4 plain"
    assert any("not zipped" in w for w in reading.warnings)


def test_a_zip_that_cannot_be_read_is_still_refused() -> None:
    data = _with_attachment_text(base64.b64encode(b"PK\x03\x04 then nothing of a zip"))
    with pytest.raises(EdxmlError, match="not a zip archive"):
        parse_document(data)


def test_an_attachment_without_a_manifest_entry_is_refused() -> None:
    data = SAMPLE.replace(
        b"<edXML:ContentId>cid:1</edXML:ContentId><edXML:ContentType>",
        b"<edXML:ContentId>cid:7</edXML:ContentId><edXML:ContentType>",
    )
    assert data != SAMPLE
    with pytest.raises(EdxmlError, match="no edXMLManifest Reference has ContentId 'cid:1'"):
        parse_document(data)


def test_a_manifest_entry_without_an_attachment_is_refused() -> None:
    start = SAMPLE.index(b"<AttachmentEncoded>")
    end = SAMPLE.index(b"</AttachmentEncoded>") + len(b"</AttachmentEncoded>")
    data = SAMPLE[:start] + SAMPLE[end:]
    with pytest.raises(EdxmlError, match="edXMLManifest lists 'cid:1'"):
        parse_document(data)


def test_the_file_format_turns_each_refusal_into_a_format_error() -> None:
    with pytest.raises(FormatError, match=r"^edXML: .*DOCTYPE"):
        EdxmlFormat().read(b'<!DOCTYPE edXML [<!ENTITY e SYSTEM "http://x/">]><edXML>&e;</edXML>')


def _laughs(encoding: str) -> str:
    return (
        f'<?xml version="1.0" encoding="{encoding}"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        + "".join(
            f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(1, 10)
        ).replace("&lol0;", "&lol;")
        + "]><edXML>&lol9;</edXML>"
    )


@pytest.mark.parametrize(
    ("encoding", "codec"),
    [
        ("UTF-16", "utf-16"),  # with a byte order mark
        ("UTF-16LE", "utf-16-le"),  # without one
        ("UTF-16BE", "utf-16-be"),
        ("UTF-32", "utf-32"),
        ("UTF-32BE", "utf-32-be"),
        ("IBM500", "cp500"),  # EBCDIC: no ASCII byte in sight
    ],
)
def test_entity_expansion_in_any_encoding_is_refused_before_libxml2_reads_it(
    encoding: str, codec: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 12 item 14: only libxml2's own amplification limit used to stop these.
    def no_parser(*args: object, **kwargs: object) -> None:
        raise AssertionError("the hostile file reached libxml2")

    monkeypatch.setattr(etree, "XMLPullParser", no_parser)
    with pytest.raises(HostileInput, match="protect against entity expansion"):
        parse_package(_laughs(encoding).encode(codec))


def test_a_package_in_utf16_without_a_doctype_is_still_read() -> None:
    text = SAMPLE.decode("utf-8").replace('encoding="UTF-8"', 'encoding="UTF-16"', 1)
    assert 'encoding="UTF-16"' in text
    document = parse_document(text.encode("utf-16"))
    assert document.document_id == "000.00.00.G22,2016/04/08,1234/VPCP-KSTT"
