"""The edXML package out of a ``sendEdoc`` request body, in each form clients of the axis use.

The SDK itself posts the file's bytes as the raw body (``application/octet-stream``); other
clients post ``multipart/form-data`` with one part ``file_doc`` (taken in :mod:`adapters.vxp.app`)
or base64 text of the file. A body is taken as XML when it starts with ``<`` (after a UTF-8 byte
order mark and blanks), else as base64 text of XML.
"""

from __future__ import annotations

import binascii
import hashlib
import os
import tempfile
from pathlib import Path
from typing import IO, Final

import pybase64

from adapters.vxp.answers import BadRequest, TooLarge

_BOM = b"\xef\xbb\xbf"


def looks_like_xml(data: bytes) -> bool:
    head = data[:4096].lstrip()
    return head.startswith(b"<") or head.startswith(_BOM)


def package_from_text(body: bytes) -> bytes:
    """The package from a raw body: the XML itself, or base64 text of it."""
    if not body.strip():
        raise BadRequest(
            "the request has no package: send the edXML file as the request body "
            "(application/octet-stream), as the multipart part 'file_doc', or as base64 text"
        )
    if looks_like_xml(body):
        return body
    text = b"".join(body.split())  # base64 may be wrapped in lines
    if text.startswith(b'"') and text.endswith(b'"'):
        text = text[1:-1]  # a JSON string of the base64 text
    try:
        decoded = pybase64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if decoded and looks_like_xml(decoded):
        return decoded
    raise BadRequest(_NOT_A_PACKAGE)


_BASE64_IGNORED: Final = b' \t\r\n"'  # line breaks, blanks, a JSON string's quotes
_DECODE_BLOCK: Final = 4 * 1024 * 1024  # a multiple of 4: base64 decodes block by block


class Upload:
    """A ``sendEdoc`` body streamed to a temporary file under ``folder`` (never whole in
    memory) and hashed as it comes; the files are removed when the ``with`` block ends.

    :meth:`package` is the edXML file itself: the body when it is XML, else the body decoded
    from base64 text into a second file, as :func:`package_from_text` does in memory."""

    def __init__(self, folder: Path, limit: int) -> None:
        self.folder = folder
        self.limit = limit
        self.size = 0
        self._digest = hashlib.sha256()
        self._paths: list[Path] = []
        self._out: IO[bytes] | None = None
        self._package: tuple[Path, bytes] | None = None

    def __enter__(self) -> Upload:
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".vxp-upload-", dir=self.folder)
        self._paths.append(Path(name))
        self._out = os.fdopen(fd, "wb")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._out is not None:
            self._out.close()
        for path in self._paths:
            path.unlink(missing_ok=True)

    @property
    def path(self) -> Path:
        return self._paths[0]

    def write(self, block: bytes) -> None:
        """Append a piece of the body; TooLarge past the limit."""
        assert self._out is not None
        self.size += len(block)
        if self.size > self.limit:
            raise TooLarge(
                f"the package is over this adapter's limit of {self.limit} bytes "
                "(max_package_bytes)"
            )
        self._digest.update(block)
        self._out.write(block)

    def finish(self) -> None:
        """The body is complete."""
        assert self._out is not None
        self._out.close()
        self._out = None

    def read(self) -> bytes:
        """The body (for one small enough to take the single-message path)."""
        return self.path.read_bytes()

    def package(self) -> Path:
        """The edXML file; BadRequest if the body is neither XML nor base64 text of XML."""
        return self._decoded()[0]

    def sha256(self) -> bytes:
        """The SHA-256 of :meth:`package` (what ``hash-file`` must match)."""
        return self._decoded()[1]

    def _decoded(self) -> tuple[Path, bytes]:
        if self._package is not None:
            return self._package
        with open(self.path, "rb") as f:
            head = f.read(4096)
        if looks_like_xml(head):
            self._package = (self.path, self._digest.digest())
            return self._package
        fd, name = tempfile.mkstemp(prefix=".vxp-package-", dir=self.folder)
        target = Path(name)
        self._paths.append(target)
        digest = hashlib.sha256()
        pending = b""
        with open(self.path, "rb") as source, os.fdopen(fd, "wb") as out:
            first = True
            while block := source.read(_DECODE_BLOCK):
                pending += block.translate(None, _BASE64_IGNORED)
                usable = len(pending) // 4 * 4
                data = _b64decode(pending[:usable])
                pending = pending[usable:]
                if first and data:
                    if not looks_like_xml(data):
                        raise BadRequest(_NOT_A_PACKAGE)
                    first = False
                digest.update(data)
                out.write(data)
            if pending or first:
                raise BadRequest(_NOT_A_PACKAGE)
        self._package = (target, digest.digest())
        return self._package


_NOT_A_PACKAGE: Final = (
    "the request body is neither an edXML file nor base64 text of one (it does not start "
    "with '<'); send the .edxml file's bytes"
)


def _b64decode(text: bytes) -> bytes:
    try:
        return pybase64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(_NOT_A_PACKAGE) from None
