"""The edXML reader's streaming path (issue 17): attachments decoded to disk, caps kept."""

from __future__ import annotations

import base64
import io
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from adapters.edxml import HostileInput, read_package
from adapters.edxml.errors import EdxmlError
from adapters.edxml.stream import StreamLimits, read_package_streaming
from tests.bigdocs_support import SAMPLE, random_file, sha256_of, write_package

MiB = 1024 * 1024


def _package(tmp_path: Path, size: int) -> tuple[Path, Path]:
    original = tmp_path / "scan.bin"
    random_file(original, size)
    package = tmp_path / "package.edxml"
    write_package(
        package, original, sender="000.00.00.G22", recipients=["000.00.00.H26"], number="77"
    )
    return package, original


def test_it_reads_the_same_document_as_the_reader_in_memory(tmp_path: Path) -> None:
    data = SAMPLE.read_bytes()
    expected = read_package(data)
    path = tmp_path / "sample.edxml"
    path.write_bytes(data)
    streamed = read_package_streaming(path, tmp_path)
    [want] = expected.package.attachments
    [got] = streamed.document.attachments
    assert (got.transfer, got.data, got.size, got.sha256) == ("chunks", "", want.size, want.sha256)
    assert streamed.files[got.sha256].path.read_bytes() == want.content()
    rest = {"attachments": []}
    assert streamed.document.model_copy(update=rest) == expected.package.model_copy(update=rest)
    assert streamed.warnings == expected.warnings


def test_a_large_attachment_is_decoded_to_disk_without_holding_it(tmp_path: Path) -> None:
    package, original = _package(tmp_path, 24 * MiB)
    tracemalloc.start()
    try:
        streamed = read_package_streaming(package, tmp_path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    [attachment] = streamed.document.attachments
    staged = streamed.files[attachment.sha256]
    assert attachment.size == original.stat().st_size == staged.size
    assert sha256_of(staged.path) == attachment.sha256 == sha256_of(original)
    # The package is 32 MiB of base64; the reader holds a few blocks of it at a time.
    assert peak < 12 * MiB, f"peak {peak} bytes"
    assert any("not zipped" in w for w in streamed.warnings)


def test_a_doctype_is_refused_before_anything_is_decoded(tmp_path: Path) -> None:
    data = SAMPLE.read_bytes().replace(b"?>", b'?>\n<!DOCTYPE x [<!ENTITY a "aaaaaaaa">]>', 1)
    path = tmp_path / "hostile.edxml"
    path.write_bytes(data)
    with pytest.raises(HostileInput, match="DOCTYPE"):
        read_package_streaming(path, tmp_path)


def test_an_attachment_over_its_cap_is_refused(tmp_path: Path) -> None:
    package, _ = _package(tmp_path, 3 * MiB)
    with pytest.raises(HostileInput, match="over 2097152 bytes"):
        read_package_streaming(package, tmp_path, StreamLimits(max_attachment_bytes=2 * MiB))


def test_the_package_cap_counts_every_attachment(tmp_path: Path) -> None:
    package, _ = _package(tmp_path, 3 * MiB)
    with pytest.raises(HostileInput, match="over"):
        read_package_streaming(package, tmp_path, StreamLimits(max_total_attachment_bytes=2 * MiB))


def test_a_zip_bomb_is_refused(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("bomb.pdf", b"\0" * (64 * MiB))
    text = base64.b64encode(buffer.getvalue())
    data = SAMPLE.read_bytes()
    start = data.index(b">", data.index(b"<edXML:ContentTransferEncoded")) + 1
    end = data.index(b"</edXML:ContentTransferEncoded>")
    path = tmp_path / "bomb.edxml"
    path.write_bytes(data[:start] + text + data[end:])
    with pytest.raises(HostileInput, match="zip bomb"):
        read_package_streaming(path, tmp_path)


def test_a_large_package_in_utf16_is_refused_with_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "utf16.edxml"
    path.write_bytes(SAMPLE.read_text(encoding="utf-8").encode("utf-16"))
    with pytest.raises(EdxmlError, match="UTF-8"):
        read_package_streaming(path, tmp_path)
