"""``lienthong.document/1``: an official document package (edXML ``MessageHeader`` + files)."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
from typing import Final, Literal

import pybase64
from pydantic import Field, model_validator

from schemas.agency_code import OrganId
from schemas.business import BusinessType
from schemas.common import (
    AS_WRITTEN_DESCRIPTION,
    ATTRIBUTES_DESCRIPTION,
    Extension,
    Organization,
    ResponseFor,
    StaffInfo,
    TraceHeader,
    WireModel,
)

DOCUMENT_SCHEMA: Final = "lienthong.document/1"


class Code(WireModel):
    """edXML ``Code``: số and ký hiệu of the document."""

    code_number: str | None = None
    code_notation: str | None = None


class PromulgationInfo(WireModel):
    """edXML ``PromulgationInfo``: where and when it was issued."""

    place: str | None = None
    promulgation_date: dt.date | None = None


class DocumentType(WireModel):
    """edXML ``DocumentType``."""

    type: int | None = None
    type_detail: int | None = None
    type_name: str | None = None


class SignerInfo(WireModel):
    """edXML ``SignerInfo``."""

    competence: str | None = None
    position: str | None = None
    full_name: str | None = None


class OtherInfo(WireModel):
    """edXML ``OtherInfo``."""

    priority: int | None = None
    sphere_of_promulgation: str | None = None
    typer_notation: str | None = None
    promulgation_amount: int | None = None
    page_amount: int | None = None
    direction: bool | None = None
    appendixes: list[str] = Field(default_factory=list)


class Receiver(WireModel):
    """edXML ``ReceiverList/Receiver`` of an update."""

    organ_id: OrganId
    receiver_type: int | None = None


class BusinessDocumentInfo(WireModel):
    """edXML ``BussinessDocumentInfo``: what an update (type 2) changes."""

    document_info: int | None = None
    document_receiver: int | None = None
    receiver_list: list[Receiver] = Field(default_factory=list)


class ReplacementInfo(WireModel):
    """edXML ``ReplacementInfo``: a document this one replaces (type 3), and for whom."""

    document_id: str
    organ_id_list: list[OrganId] = Field(default_factory=list)


class Business(WireModel):
    """edXML ``Bussiness`` (sic): new, revoke, update or replace, and by whom."""

    document_id: str | None = None
    bussiness_doc_type: BusinessType = BusinessType.NEW
    bussiness_doc_reason: str | None = None
    paper: int | None = None
    bussiness_document_info: BusinessDocumentInfo | None = None
    replacement_info_list: list[ReplacementInfo] = Field(default_factory=list)
    staff_info: StaffInfo | None = None


#: How an attachment's bytes travel: inside the message (``data``, base64), or as chunks
#: stored at the hub under their SHA-256 (``data`` empty; :mod:`schemas.chunks`, issue 17).
TRANSFER_INLINE: Final = "inline"
TRANSFER_CHUNKS: Final = "chunks"


#: An attachment with more base64 than this is checked :data:`CHECK_CHUNK_CHARS` at a time
#: (smaller ones are decoded whole: one call, nothing to gain).
CHECK_WHOLE_UP_TO: Final = 8 * 1024 * 1024
#: Characters of base64 checked at a time (768 KiB decoded; a multiple of 4).
CHECK_CHUNK_CHARS: Final = 1024 * 1024


class Attachment(WireModel):
    """One attached file. ``data`` is the file's bytes, base64; size and SHA-256 must match.

    With ``transfer = "chunks"`` the bytes travel apart, in chunks keyed by ``sha256``
    (issue 17): ``data`` is empty and ``size`` / ``sha256`` describe the file.
    """

    content_id: str | None = None
    name: str = Field(min_length=1)
    description: str | None = None
    content_type: str = "application/octet-stream"
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    data: str
    transfer: Literal["inline", "chunks"] = TRANSFER_INLINE

    @model_validator(mode="after")
    def _data_matches_size_and_digest(self) -> Attachment:
        if self.transfer == TRANSFER_CHUNKS:
            if self.data:
                raise ValueError(
                    f"attachment {self.name!r}: transfer is 'chunks', so data must be empty "
                    "(its bytes travel as chunks)"
                )
            return self
        size, digest = self._size_and_digest()
        if size != self.size:
            raise ValueError(
                f"attachment {self.name!r}: size is {self.size} but data holds {size} bytes"
            )
        if digest != self.sha256:
            raise ValueError(
                f"attachment {self.name!r}: sha256 is {self.sha256} but data hashes to {digest}"
            )
        return self

    def _size_and_digest(self) -> tuple[int, str]:
        """The decoded size and SHA-256 of ``data``; above :data:`CHECK_WHOLE_UP_TO` decoded
        :data:`CHECK_CHUNK_CHARS` at a time, so a 15 MiB attachment is never whole in memory
        beside its base64 text (the relay only checks it). Invalid base64 is refused exactly
        as :meth:`content` refuses it."""
        data = self.data
        step = CHECK_CHUNK_CHARS
        if (
            len(data) <= CHECK_WHOLE_UP_TO
            or len(data) % 4
            or data.find("=", 0, len(data) - 4) != -1
        ):
            raw = self.content()  # short, or not well-formed: decoded whole (says what is wrong)
            return len(raw), hashlib.sha256(raw).hexdigest()
        digest = hashlib.sha256()
        size = 0
        for start in range(0, len(data), step):
            try:
                part = pybase64.b64decode(data[start : start + step], validate=True)
            except (binascii.Error, ValueError):
                self.content()  # raises, saying what is wrong
                raise  # pragma: no cover - content() accepted what a chunk refused
            size += len(part)
            digest.update(part)
        return size, digest.hexdigest()

    def content(self) -> bytes:
        """The file's bytes."""
        try:
            # pybase64 decodes with SIMD, 20 times faster than the standard library (a scanned
            # PDF is megabytes); the standard library says more precisely what is wrong.
            return pybase64.b64decode(self.data, validate=True)
        except (binascii.Error, ValueError):
            pass
        try:
            return base64.b64decode(self.data, validate=True)
        except (binascii.Error, ValueError) as e:
            raise ValueError(f"attachment {self.name!r}: data is not valid base64 ({e})") from e

    @classmethod
    def from_bytes(
        cls,
        name: str,
        raw: bytes,
        content_type: str = "application/octet-stream",
        *,
        content_id: str | None = None,
        description: str | None = None,
    ) -> Attachment:
        return cls(
            content_id=content_id,
            name=name,
            description=description,
            content_type=content_type,
            size=len(raw),
            sha256=hashlib.sha256(raw).hexdigest(),
            data=base64.b64encode(raw).decode("ascii"),
        )


class Document(WireModel):
    """An official document package, one submission to one or more recipients."""

    schema_: Literal["lienthong.document/1"] = Field(DOCUMENT_SCHEMA, alias="schema")
    document_id: str = Field(min_length=1, max_length=500, description="edXML DocumentId")
    sender: Organization = Field(description="edXML From")
    recipients: list[Organization] = Field(min_length=1, description="edXML To, one per agency")
    code: Code | None = None
    promulgation_info: PromulgationInfo | None = None
    document_type: DocumentType | None = None
    subject: str | None = None
    content: str | None = None
    signer_info: SignerInfo | None = None
    due_date: dt.date | None = None
    other_info: OtherInfo | None = None
    steering_type: int | None = None
    to_places: list[str] = Field(default_factory=list)
    response_for: list[ResponseFor] = Field(default_factory=list)
    trace: list[TraceHeader] = Field(default_factory=list, description="edXML TraceHeaderList")
    business: Business = Field(default_factory=Business)
    signature: str | None = Field(None, description="the header Signature block, kept as XML")
    attachments: list[Attachment] = Field(default_factory=list)
    extensions: list[Extension] = Field(default_factory=list)
    as_written: dict[str, str] = Field(default_factory=dict, description=AS_WRITTEN_DESCRIPTION)
    attributes: dict[str, dict[str, str]] = Field(
        default_factory=dict, description=ATTRIBUTES_DESCRIPTION
    )

    @model_validator(mode="after")
    def _recipients_are_distinct(self) -> Document:
        seen: set[str] = set()
        for r in self.recipients:
            if r.organ_id in seen:
                raise ValueError(f"recipients: {r.organ_id!r} is listed twice")
            seen.add(r.organ_id)
        return self

    @property
    def business_type(self) -> BusinessType:
        return self.business.bussiness_doc_type

    def recipient_codes(self) -> list[str]:
        return [r.organ_id for r in self.recipients]

    def chunked_attachments(self) -> list[Attachment]:
        """The attachments whose bytes travel as chunks (issue 17)."""
        return [a for a in self.attachments if a.transfer == TRANSFER_CHUNKS]
