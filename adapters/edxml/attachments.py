"""Attachment bytes on the wire: the file zip-compressed, then base64, whatever ContentType says.

That is what is written. What is read is decided by the bytes, never by ContentType: base64 of
a zip (its magic ``PK\x03\x04``) holding one file is unzipped; anything else (a raw PDF, as
some servers send, or a zip of several files) is kept exactly as sent, with a warning.

Unzipping is streamed with caps on the output (per attachment and per package) and on the
unzipped/zipped ratio, so a zip bomb is refused after a bounded amount of work and memory.
"""

from __future__ import annotations

import base64
import binascii
import io
import zipfile
import zlib

from adapters.edxml.errors import EdxmlError, HostileInput
from adapters.edxml.safety import DEFAULT_LIMITS, Limits

_CHUNK = 64 * 1024
# Zip entries get a fixed date so that rendering the same model twice gives the same bytes.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


class NotOneFile(EdxmlError):
    """A readable zip archive that holds no file or several: kept whole as the attachment."""


class Budget:
    """What is left of a package's allowance of unzipped bytes."""

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self.remaining = limits.max_total_attachment_bytes


def decode_base64(text: str, where: str) -> bytes:
    """Base64 text as found in ``ContentTransferEncoded`` (line breaks allowed)."""
    compact = "".join(text.split())
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as e:
        raise EdxmlError(f"{where}: ContentTransferEncoded is not valid base64 ({e})") from e


def unzip_single(zipped: bytes, where: str, budget: Budget) -> bytes:
    """The one file inside ``zipped``, read with the caps of ``budget``."""
    limits = budget.limits
    try:
        archive = zipfile.ZipFile(io.BytesIO(zipped))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as e:
        raise EdxmlError(f"{where}: the attachment is not a zip archive ({e})") from e
    with archive:
        files = [info for info in archive.infolist() if not info.is_dir()]
        if len(files) != 1:
            raise NotOneFile(
                f"{where}: the zip archive holds {len(files)} files, expected exactly one"
            )
        info = files[0]
        cap = min(limits.max_attachment_bytes, budget.remaining)
        if info.file_size > cap:
            raise HostileInput(
                f"{where}: the zipped file declares {info.file_size} bytes, "
                f"the limit is {cap} bytes"
            )
        out = bytearray()
        try:
            with archive.open(info) as stream:
                while chunk := stream.read(_CHUNK):
                    out += chunk
                    if len(out) > cap:
                        raise HostileInput(
                            f"{where}: the zipped file unpacks to more than {cap} bytes (zip bomb?)"
                        )
                    if len(out) > limits.ratio_floor and len(out) > limits.max_ratio * max(
                        len(zipped), 1
                    ):
                        raise HostileInput(
                            f"{where}: the zipped file unpacks more than {limits.max_ratio} "
                            f"times its compressed size (zip bomb?)"
                        )
        except HostileInput:
            raise
        except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError) as e:
            raise EdxmlError(f"{where}: the zip archive cannot be read ({e})") from e
    budget.remaining -= len(out)
    return bytes(out)


#: Local file header, empty archive, spanned archive.
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_REPLACEMENT = "\ufffd".encode()


def is_zip(data: bytes) -> bool:
    return data.startswith(ZIP_MAGICS)


def decode_attachment(
    text: str, where: str, budget: Budget, warnings: list[str] | None = None
) -> bytes:
    """The original file from a ``ContentTransferEncoded`` text (see the module docstring)."""
    data = decode_base64(text, where)
    notes = warnings if warnings is not None else []
    if not is_zip(data):
        notes.append(f"{where}: the attachment is not zipped (the standard zips it); kept as sent")
        _check_pdf(data, where, notes)
        return data
    try:
        raw = unzip_single(data, where, budget)
    except NotOneFile as e:
        # Not a zip the standard describes, but a file all the same: kept whole. A zip that
        # cannot be read (or a bomb) is still refused: what it holds cannot be known.
        notes.append(f"{e}; the zip archive itself is kept as the attachment")
        return data
    _check_pdf(raw, where, notes)
    return raw


def _check_pdf(data: bytes, where: str, warnings: list[str]) -> None:
    """A warning for a PDF that cannot be whole; its bytes are kept all the same."""
    if not data.startswith(b"%PDF-"):
        return
    damaged = data.count(_REPLACEMENT)
    if damaged:
        warnings.append(
            f"{where}: the PDF holds {damaged} U+FFFD replacement characters (it was passed "
            "through a text decoder and is probably corrupt); kept as sent"
        )
    elif b"%%EOF" not in data[-1024:]:
        warnings.append(f"{where}: the PDF has no %%EOF at its end (truncated?); kept as sent")


def encode_attachment(name: str, raw: bytes) -> str:
    """``ContentTransferEncoded`` text for a file: zip (deflate) then base64."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo(_member_name(name), date_time=_ZIP_DATE)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        archive.writestr(info, raw)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _member_name(name: str) -> str:
    # The file name inside the zip is informative only; keep it free of directories.
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return base or "attachment"
