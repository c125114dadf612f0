"""Document bodies for the scenarios: built once as a template, then stamped per submission."""

from __future__ import annotations

import os
from dataclasses import dataclass

from schemas import Attachment, Document, Organization

_SENTINEL = "@@BENCH-DOCUMENT-ID@@"
KIB = 1024
MIB = 1024 * 1024


@dataclass(frozen=True)
class Template:
    """A document body split around its ``document_id``, so stamping one costs a concatenation."""

    prefix: bytes
    suffix: bytes

    def body(self, document_id: str) -> bytes:
        return self.prefix + document_id.encode("ascii") + self.suffix

    @property
    def size(self) -> int:
        return len(self.prefix) + len(self.suffix) + len(document_id_for("000.00.00.A00", 0))


def document_id_for(sender: str, seq: int) -> str:
    """An edXML-style DocumentId (``OrganId,yyyy/MM/dd,số/ký hiệu``), unique per sender and seq."""
    return f"{sender},2026/11/24,{seq:010d}/BENCH"


def build_template(
    sender: str, recipients: list[str], *, body_bytes: int = 2 * KIB, attachment_bytes: int = 0
) -> Template:
    """A valid ``lienthong.document/1`` from ``sender`` to ``recipients``.

    ``content`` pads the JSON to about ``body_bytes`` (a fan-out document's recipient list may
    already be longer); ``attachment_bytes`` adds one attachment of random (incompressible) bytes.
    """
    attachments = []
    if attachment_bytes:
        attachments.append(
            Attachment.from_bytes("phu-luc.pdf", os.urandom(attachment_bytes), "application/pdf")
        )

    def make(content: str) -> bytes:
        doc = Document(
            document_id=_SENTINEL,
            sender=Organization(organ_id=sender, organ_name="Cơ quan gửi (bench)"),
            recipients=[Organization(organ_id=r) for r in recipients],
            subject="Về việc đo hiệu năng trục liên thông",
            content=content,
            attachments=attachments,
        )
        return doc.model_dump_json(by_alias=True, exclude_none=True).encode("utf-8")

    bare = make("")
    stamped = len(bare) - len(_SENTINEL) + len(document_id_for(sender, 0))
    pad = max(0, body_bytes - stamped)
    raw = make("x" * pad)
    prefix, sep, suffix = raw.partition(_SENTINEL.encode("ascii"))
    if not sep:
        raise AssertionError("document id sentinel not found in the serialised document")
    return Template(prefix=prefix, suffix=suffix)
