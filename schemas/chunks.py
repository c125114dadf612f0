"""Chunked transfer of large attachments (issue 17): ``lienthong.chunk/1`` and its request.

A chunk's AMQP body is one line of JSON (:class:`ChunkHeader`), a newline, then the chunk's raw
bytes: the bytes are never base64-encoded, and the header travels in the body so that neither
side depends on AMQP headers. A chunk is identified by the SHA-256 of the whole attachment and
its offset in it, so a chunk sent twice is the same chunk, stored and written once.

``lienthong.chunk_request/1`` is what a recipient's adapter publishes to its outbox to ask the
relay for chunks of an attachment of a document it was delivered.

``lienthong.chunk_refused/1`` is the relay's answer, to the requester's inbox, when it will not
serve those chunks any more: every delivery to the requester naming the attachment has failed
(the transfer did not finish in time, or an operator gave up on it). The adapter abandons the
transfer: it deletes what it received and never hands the document over.
"""

from __future__ import annotations

from typing import Final, Literal

from pydantic import Field, ValidationError

from schemas.common import WireModel

CHUNK_SCHEMA: Final = "lienthong.chunk/1"
CHUNK_REQUEST_SCHEMA: Final = "lienthong.chunk_request/1"
CHUNK_REFUSED_SCHEMA: Final = "lienthong.chunk_refused/1"

#: AMQP ``type`` of a chunk (adapter -> relay, relay -> adapter) and of a request for chunks.
TYPE_CHUNK: Final = "chunk"
TYPE_CHUNK_REQUEST: Final = "chunk_request"
#: AMQP ``type`` of the relay's refusal of a chunk request (relay -> adapter).
TYPE_CHUNK_REFUSED: Final = "chunk_refused"

#: Chunk sizes an adapter may be configured with (RabbitMQ 4.x refuses messages over 16 MiB).
MIN_CHUNK_BYTES: Final = 1024 * 1024
MAX_CHUNK_BYTES: Final = 4 * 1024 * 1024
#: Chunks one request may ask for.
MAX_REQUESTED: Final = 64

SHA256_PATTERN: Final = r"^[0-9a-f]{64}$"


class InvalidChunk(ValueError):
    """A chunk or chunk request that cannot be read; ``str()`` says why."""


class ChunkHeader(WireModel):
    """What a chunk is: ``length`` bytes at ``offset`` of the ``size``-byte file ``sha256``."""

    schema_: Literal["lienthong.chunk/1"] = Field(CHUNK_SCHEMA, alias="schema")
    sha256: str = Field(pattern=SHA256_PATTERN)
    size: int = Field(ge=0, description="bytes of the whole attachment")
    offset: int = Field(ge=0)
    length: int = Field(ge=1, le=MAX_CHUNK_BYTES)
    #: the connected agency that submitted the document (set by the relay towards recipients)
    sender: str | None = Field(None, max_length=100)


class ChunkRequest(WireModel):
    """A recipient asks for ``count`` chunks of attachment ``sha256`` of a document ``sender``
    sent it, from the one holding byte ``from_offset`` on (the recipient need not know the
    sender's chunk size)."""

    schema_: Literal["lienthong.chunk_request/1"] = Field(CHUNK_REQUEST_SCHEMA, alias="schema")
    sender: str = Field(min_length=1, max_length=100, description="the submitting agency")
    sha256: str = Field(pattern=SHA256_PATTERN)
    from_offset: int = Field(ge=0)
    count: int = Field(ge=1, le=MAX_REQUESTED)


class ChunkRefused(WireModel):
    """The relay will not serve the chunks of attachment ``sha256`` that ``sender`` sent: the
    deliveries ``message_ids`` (the ids the recipient got the documents under) have failed.
    The recipient's adapter abandons every transfer from ``sender`` waiting for ``sha256``;
    ``reason`` says why, for a person."""

    schema_: Literal["lienthong.chunk_refused/1"] = Field(CHUNK_REFUSED_SCHEMA, alias="schema")
    sender: str = Field(min_length=1, max_length=100, description="the submitting agency")
    sha256: str = Field(pattern=SHA256_PATTERN)
    message_ids: list[str] = Field(default_factory=list)
    reason: str = Field(min_length=1)


def encode_chunk(header: ChunkHeader, data: bytes | memoryview) -> bytes:
    """The AMQP body of a chunk."""
    if len(data) != header.length:
        raise InvalidChunk(
            f"chunk at {header.offset}: {len(data)} bytes, header says {header.length}"
        )
    line = header.model_dump_json(by_alias=True, exclude_none=True).encode("utf-8")
    return b"".join((line, b"\n", data))


def decode_chunk(body: bytes) -> tuple[ChunkHeader, memoryview]:
    """The header and the bytes of a chunk's body; InvalidChunk says what is wrong."""
    end = body.find(b"\n", 0, 4096)
    if end < 0:
        raise InvalidChunk("chunk: no header line (a JSON line, then the bytes)")
    try:
        header = ChunkHeader.model_validate_json(body[:end], by_alias=True)
    except ValidationError as e:
        raise InvalidChunk(f"chunk header: {e.errors(include_url=False)[0]['msg']}") from e
    data = memoryview(body)[end + 1 :]
    if len(data) != header.length:
        raise InvalidChunk(
            f"chunk at {header.offset} of {header.sha256}: {len(data)} bytes, "
            f"header says {header.length}"
        )
    if header.offset + header.length > header.size:
        raise InvalidChunk(
            f"chunk at {header.offset} of {header.sha256}: ends past the file's {header.size} bytes"
        )
    return header, data


def chunk_offsets(size: int, chunk_bytes: int) -> list[int]:
    """The offsets of the chunks of a ``size``-byte file (an empty file has one empty chunk:
    none is sent)."""
    return list(range(0, size, chunk_bytes))
