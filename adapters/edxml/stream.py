"""Reading a large edXML package from disk with bounded memory (issue 17).

:func:`read_package_streaming` reads a package in two passes over the file:

1. expat reads the file block by block; the text of each ``Attachment/ContentTransferEncoded``
   is decoded from base64 straight into a file in ``workdir`` as it arrives (hashed and counted
   on the way), a zip holding one file is unzipped to disk, and the byte ranges of those texts
   are noted. A DOCTYPE or an entity declaration stops the pass (refused, as in
   :mod:`adapters.edxml.safety`); so do the depth and element caps.
2. the package *without* those texts (each replaced by a short placeholder) is small: it is
   read by the ordinary reader (:func:`adapters.edxml.parse.read_package`), with every rule
   and warning of it, and each attachment then refers to its file (``transfer = "chunks"``).

The caps of :class:`StreamLimits` apply per attachment and per package; the defaults admit a
2 GiB package. Only UTF-8 files take this path (every real package seen is UTF-8).
"""

from __future__ import annotations

import hashlib
import os
import pyexpat
import zipfile
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

import pybase64

from adapters.edxml.attachments import ZIP_MAGICS
from adapters.edxml.errors import EdxmlError, HostileInput
from adapters.edxml.parse import read_package
from adapters.edxml.safety import _REFUSAL, DEFAULT_LIMITS, Limits
from schemas import Attachment, Document
from schemas.document import TRANSFER_CHUNKS

_BLOCK = 1024 * 1024
_PLACEHOLDER = b"lienthong-stream:"
_WHITESPACE = b" \t\r\n"
_NOT_ZIPPED = "the attachment is not zipped (the standard zips it); kept as sent"


@dataclass(frozen=True)
class StreamLimits:
    """Caps of a package read from disk; the defaults admit a 2 GiB package."""

    #: The file (base64 makes a 2 GiB attachment 2.7 GiB of text).
    max_file_bytes: int = 3 * 1024**3
    #: Bytes of one attachment (decoded, unzipped).
    max_attachment_bytes: int = 2 * 1024**3
    #: Bytes of all attachments of the package (decoded, unzipped).
    max_total_attachment_bytes: int = 2 * 1024**3
    #: The rest of the package (what remains with the attachments taken out): the reader's caps.
    package: Limits = DEFAULT_LIMITS


@dataclass(frozen=True)
class StagedFile:
    """One attachment's bytes, on disk."""

    path: Path
    size: int
    sha256: str


@dataclass
class StreamedPackage:
    """A package read from disk: the document (attachments ``transfer = "chunks"``), the files
    holding their bytes by SHA-256, the file's own SHA-256 and the reader's warnings."""

    document: Document
    files: dict[str, StagedFile]
    file_sha256: str
    warnings: list[str] = field(default_factory=list)


class _Base64ToFile:
    """base64 text in, bytes out to a file, hashed and counted; capped."""

    def __init__(self, out: IO[bytes], where: str, cap: int) -> None:
        self.out = out
        self.where = where
        self.cap = cap
        self.size = 0
        self.digest = hashlib.sha256()
        self.head = b""
        self._rest = b""

    def feed(self, text: str) -> None:
        try:
            raw = text.encode("ascii")
        except UnicodeEncodeError as e:
            raise EdxmlError(
                f"{self.where}: ContentTransferEncoded is not valid base64 (non-ASCII text)"
            ) from e
        data = self._rest + raw.translate(None, _WHITESPACE)
        cut = len(data) - len(data) % 4
        self._rest = data[cut:]
        if cut:
            self._write(data[:cut])

    def close(self) -> None:
        if self._rest:
            raise EdxmlError(
                f"{self.where}: ContentTransferEncoded is not valid base64 (its length is not a "
                "multiple of 4)"
            )

    def _write(self, text: bytes) -> None:
        try:
            raw = pybase64.b64decode(text, validate=True)
        except ValueError as e:
            raise EdxmlError(f"{self.where}: ContentTransferEncoded is not valid base64") from e
        self.size += len(raw)
        if self.size > self.cap:
            raise HostileInput(f"{self.where}: the attachment is over {self.cap} bytes")
        if len(self.head) < 8:
            self.head += raw[:8]
        self.digest.update(raw)
        self.out.write(raw)


@dataclass
class _Range:
    start_tag: int  # byte index of the start tag's "<"
    end_tag: int = -1  # byte index of the end tag's "<" (== start_tag when self-closing)
    staged: StagedFile | None = None


class _FirstPass:
    def __init__(self, path: Path, workdir: Path, limits: StreamLimits) -> None:
        self.path = path
        self.workdir = workdir
        self.limits = limits
        self.stack: list[str] = []
        self.elements = 0
        self.ranges: list[_Range] = []
        self.decoder: _Base64ToFile | None = None
        self.out: IO[bytes] | None = None
        self.total = 0
        self.warnings: list[str] = []
        self.parser = pyexpat.ParserCreate()
        self.parser.buffer_text = True
        self.parser.buffer_size = _BLOCK
        self.parser.StartElementHandler = self._start
        self.parser.EndElementHandler = self._end
        self.parser.CharacterDataHandler = self._text
        self.parser.StartDoctypeDeclHandler = self._refuse
        self.parser.EntityDeclHandler = self._refuse

    @staticmethod
    def _refuse(*_args: Any) -> None:
        raise HostileInput(_REFUSAL)

    def _start(self, name: str, _attrs: Any) -> None:
        local = name.rpartition(":")[2]
        self.elements += 1
        if len(self.stack) >= self.limits.package.max_depth:
            raise HostileInput(
                f"elements are nested more than {self.limits.package.max_depth} deep (at <{local}>)"
            )
        if self.elements > self.limits.package.max_elements:
            raise HostileInput(
                f"the file holds more than {self.limits.package.max_elements} elements"
            )
        if local == "ContentTransferEncoded" and self.stack and self.stack[-1] == "Attachment":
            index = len(self.ranges) + 1
            self.ranges.append(_Range(start_tag=self.parser.CurrentByteIndex))
            self.out = open(self.workdir / f"attachment-{index}.part", "wb")  # noqa: SIM115
            where = f"AttachmentEncoded/Attachment[{index}]"
            cap = min(
                self.limits.max_attachment_bytes,
                self.limits.max_total_attachment_bytes - self.total,
            )
            self.decoder = _Base64ToFile(self.out, where, cap)
        self.stack.append(local)

    def _text(self, data: str) -> None:
        if self.decoder is not None:
            self.decoder.feed(data)

    def _end(self, name: str) -> None:
        self.stack.pop()
        if self.decoder is None or name.rpartition(":")[2] != "ContentTransferEncoded":
            return
        decoder, out = self.decoder, self.out
        assert out is not None
        self.decoder = self.out = None
        decoder.close()
        out.flush()
        os.fsync(out.fileno())
        out.close()
        r = self.ranges[-1]
        r.end_tag = self.parser.CurrentByteIndex
        part = Path(out.name)
        if decoder.size == 0:
            part.unlink()
            return
        r.staged = self._unzipped(part, decoder)
        self.total += r.staged.size

    def _unzipped(self, part: Path, decoder: _Base64ToFile) -> StagedFile:
        """The attachment's file: unzipped when it is a zip of one file (bomb caps apply)."""
        where = decoder.where
        if not decoder.head.startswith(ZIP_MAGICS):
            self.warnings.append(f"{where}: {_NOT_ZIPPED}")
            return StagedFile(part, decoder.size, decoder.digest.hexdigest())
        cap = min(
            self.limits.max_attachment_bytes, self.limits.max_total_attachment_bytes - self.total
        )
        target = part.with_suffix(".unzipped")
        digest = hashlib.sha256()
        size = 0
        try:
            with zipfile.ZipFile(part) as archive:
                files = [i for i in archive.infolist() if not i.is_dir()]
                if len(files) != 1:
                    self.warnings.append(
                        f"{where}: the zip archive holds {len(files)} files, expected exactly one; "
                        "the zip archive itself is kept as the attachment"
                    )
                    return StagedFile(part, decoder.size, decoder.digest.hexdigest())
                if files[0].file_size > cap:
                    raise HostileInput(
                        f"{where}: the zipped file declares {files[0].file_size} bytes, the limit "
                        f"is {cap} bytes"
                    )
                with archive.open(files[0]) as src, open(target, "wb") as dst:
                    while block := src.read(_BLOCK):
                        size += len(block)
                        if size > cap:
                            raise HostileInput(
                                f"{where}: the zipped file unpacks to more than {cap} bytes "
                                "(zip bomb?)"
                            )
                        ratio = self.limits.package.max_ratio
                        if size > self.limits.package.ratio_floor and size > ratio * max(
                            decoder.size, 1
                        ):
                            raise HostileInput(
                                f"{where}: the zipped file unpacks more than {ratio} times its "
                                "compressed size (zip bomb?)"
                            )
                        digest.update(block)
                        dst.write(block)
                    dst.flush()
                    os.fsync(dst.fileno())
        except HostileInput:
            target.unlink(missing_ok=True)
            raise
        except (
            zipfile.BadZipFile,
            zipfile.LargeZipFile,
            zlib.error,
            EOFError,
            RuntimeError,
            NotImplementedError,
            ValueError,
        ) as e:
            target.unlink(missing_ok=True)
            raise EdxmlError(f"{where}: the zip archive cannot be read ({e})") from e
        part.unlink()
        return StagedFile(target, size, digest.hexdigest())

    def run(self) -> str:
        """Parse the whole file; returns its SHA-256."""
        digest = hashlib.sha256()
        with open(self.path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > self.limits.max_file_bytes:
                raise HostileInput(
                    f"the file is {size} bytes, over the limit of "
                    f"{self.limits.max_file_bytes} bytes"
                )
            first = True
            read = 0
            while block := f.read(_BLOCK):
                read += len(block)
                if read > self.limits.max_file_bytes:
                    raise HostileInput(f"the file grew over {self.limits.max_file_bytes} bytes")
                if first:
                    _require_utf8(block)
                    first = False
                digest.update(block)
                self._feed(block, False)
            self._feed(b"", True)
        return digest.hexdigest()

    def _feed(self, block: bytes, final: bool) -> None:
        try:
            self.parser.Parse(block, final)
        except pyexpat.ExpatError as e:
            raise EdxmlError(
                f"the file is not well-formed XML: {pyexpat.ErrorString(e.code)}, line {e.lineno}"
            ) from e


def _require_utf8(head: bytes) -> None:
    if head.startswith((b"\xfe\xff", b"\xff\xfe", b"\x00", b"\x4c\x6f\xa7\x94")) or (
        head[:1] == b"<" and head[1:2] == b"\x00"
    ):
        raise EdxmlError(
            "a package this large must be written in UTF-8 (this one is UTF-16/32 or EBCDIC)"
        )
    decl = head[:200].split(b"?>", 1)[0].lower()
    if b"encoding" in decl and b"utf-8" not in decl and b"utf8" not in decl:
        raise EdxmlError(
            "a package this large must be written in UTF-8 (its declaration says otherwise)"
        )


def _text_start(f: IO[bytes], start_tag: int) -> int:
    """The byte index just after the start tag that begins at ``start_tag``."""
    f.seek(start_tag)
    head = f.read(64 * 1024)
    quote: int | None = None
    for i, byte in enumerate(head):
        if quote is not None:
            if byte == quote:
                quote = None
        elif byte in (0x22, 0x27):
            quote = byte
        elif byte == 0x3E:  # ">"
            return start_tag + i + 1
    raise EdxmlError("a ContentTransferEncoded start tag is longer than 64 KiB")


def _skeleton(path: Path, ranges: list[_Range]) -> bytes:
    """The file with the attachments' texts replaced by placeholders."""
    parts: list[bytes] = []
    with open(path, "rb") as f:
        at = 0
        for index, r in enumerate(ranges, 1):
            if r.staged is None or r.end_tag <= r.start_tag:
                continue
            begin = _text_start(f, r.start_tag)
            f.seek(at)
            parts.append(f.read(begin - at))
            parts.append(pybase64.b64encode(_PLACEHOLDER + str(index).encode()))
            at = r.end_tag
        f.seek(at)
        parts.append(f.read())
    return b"".join(parts)


def read_package_streaming(
    path: Path, workdir: Path, limits: StreamLimits | None = None
) -> StreamedPackage:
    """Read the document package at ``path``, its attachments decoded into ``workdir``.

    EdxmlError (HostileInput) says what is wrong; files written to ``workdir`` are the
    caller's to remove (they are left on error too).
    """
    limits = limits or StreamLimits()
    first = _FirstPass(path, workdir, limits)
    try:
        file_sha256 = first.run()
    finally:
        if first.out is not None:
            first.out.close()
    skeleton = _skeleton(path, first.ranges)
    reading = read_package(skeleton, replace(limits.package, max_bytes=max(len(skeleton), 1)))
    if not isinstance(reading.package, Document):
        raise EdxmlError("a status package this large cannot be right: statuses carry no files")
    document = reading.package
    files: dict[str, StagedFile] = {}
    attachments: list[Attachment] = []
    for attachment in document.attachments:
        raw = attachment.content()
        if not raw.startswith(_PLACEHOLDER):  # pragma: no cover - every text is replaced
            attachments.append(attachment)
            continue
        staged = first.ranges[int(raw[len(_PLACEHOLDER) :]) - 1].staged
        assert staged is not None
        files[staged.sha256] = staged
        attachments.append(
            Attachment(
                content_id=attachment.content_id,
                name=attachment.name,
                description=attachment.description,
                content_type=attachment.content_type,
                size=staged.size,
                sha256=staged.sha256,
                data="",
                transfer=TRANSFER_CHUNKS,
            )
        )
    document.attachments = attachments
    warnings = [w for w in reading.warnings if not w.endswith(_NOT_ZIPPED)] + first.warnings
    return StreamedPackage(document, files, file_sha256, warnings)
