"""The JSON format: files are the wire models themselves (``lienthong.document/1`` …)."""

from __future__ import annotations

from adapters.formats.base import FileFormat, FormatError
from schemas import Document, Status, decode_message
from schemas.envelope import InvalidMessage


class JsonFormat(FileFormat):
    """``*.json`` files holding a ``lienthong.document/1`` or ``lienthong.status/1`` object."""

    name = "json"
    suffix = ".json"

    def read(self, data: bytes) -> Document | Status:
        try:
            message = decode_message(data)
        except InvalidMessage as e:
            raise FormatError(str(e)) from e
        if not isinstance(message, Document | Status):
            raise FormatError(
                f"schema: {message.schema_!r} cannot be sent by an agency; an outbox file "
                "holds a lienthong.document/1 or a lienthong.status/1"
            )
        return message

    def write_document(self, document: Document) -> bytes:
        return document.model_dump_json(by_alias=True, indent=2).encode("utf-8")

    def write_status(self, status: Status) -> bytes:
        return status.model_dump_json(by_alias=True, indent=2).encode("utf-8")
