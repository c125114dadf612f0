"""Attachment bytes on the wire: the file zip-compressed, then base64, whatever ContentType says.

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
            raise EdxmlError(
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


def decode_attachment(text: str, where: str, budget: Budget) -> bytes:
    """The original file from a ``ContentTransferEncoded`` text."""
    return unzip_single(decode_base64(text, where), where, budget)


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
