"""Chunks in, chunks out: the relay's side of the chunked transfer (issue 17).

* A ``chunk`` in an agency's outbox is stored (:mod:`relay.blobs.store`) under the agency that
  published it; a chunk stored before (redelivered, sent again after a crash) is left as it is.
* A ``chunk_request`` from a recipient is answered with the chunks it names, published to its
  inbox, if it was delivered a document from that sender naming the attachment. The bytes
  answered per batch are capped (``serve_budget``): a request beyond the cap is answered
  later, when the recipient's adapter asks again, so the relay never holds more than the cap.
* A document whose attachments travel in chunks is accepted only when the hub holds every
  byte of them (:func:`missing`); the sender's adapter publishes the chunks first.
* A ``chunk_request`` for an attachment whose every delivery to the requester has failed (the
  transfer timed out, :mod:`relay.blobs.expiry`, or the retries gave up) is answered with one
  ``chunk_refused`` (``schemas.chunks.ChunkRefused``): the adapter abandons the transfer. It
  is not kept as a rejection: an adapter that does not know the answer asks again and again.

Nothing here talks to RabbitMQ: answers are :class:`~relay.domain.outgoing.Outgoing` messages
that the worker publishes with confirms before it acks what it took.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import structlog
from sqlalchemy import Connection

from relay.blobs import store
from relay.domain import states
from relay.domain.intake import Envelope
from relay.domain.outgoing import Outgoing, hub_id
from schemas import Document
from schemas.chunks import (
    CHUNK_REQUEST_SCHEMA,
    TYPE_CHUNK,
    TYPE_CHUNK_REFUSED,
    TYPE_CHUNK_REQUEST,
    ChunkHeader,
    ChunkRefused,
    ChunkRequest,
    InvalidChunk,
    decode_chunk,
    encode_chunk,
)

log = structlog.get_logger()

#: Kind of the hub id of a chunk published to a recipient, and of a refusal to serve one.
KIND_CHUNK: Final = "chunk"
KIND_CHUNK_REFUSED: Final = "chunk_refused"
#: Chunk bytes one batch publishes at most (the rest is asked for again).
SERVE_BUDGET_BYTES: Final = 16 * 1024 * 1024


@dataclass
class Answer:
    """What became of one chunk or chunk request: messages to publish, or why it is refused."""

    publishes: list[Outgoing] = field(default_factory=list)
    refusal: str | None = None
    #: whom to tell about a refusal: the outbox's owner, unless it did not publish the message
    tell_owner: bool = True


def handles(envelope: Envelope) -> bool:
    """Whether this module takes the message (a chunk or a chunk request)."""
    return envelope.message_type in (TYPE_CHUNK, TYPE_CHUNK_REQUEST)


def answer(
    conn: Connection, envelopes: Sequence[Envelope], serve_budget: int = SERVE_BUDGET_BYTES
) -> list[Answer]:
    """Store the chunks and answer the requests of one batch, inside its transaction."""
    answers = [Answer() for _ in envelopes]
    uploads: list[store.StoredChunk] = []
    requests: list[tuple[int, ChunkRequest]] = []
    for i, env in enumerate(envelopes):
        if env.user_id != env.owner:
            answers[i].refusal = (
                f"a {env.message_type} must be published by the outbox's owner {env.owner!r} "
                f"(user_id is {env.user_id!r})"
            )
            answers[i].tell_owner = False
            continue
        try:
            if env.message_type == TYPE_CHUNK:
                header, data = decode_chunk(env.body)
                uploads.append(
                    store.StoredChunk(env.owner, header.sha256, header.size, header.offset, data)
                )
            else:
                requests.append((i, ChunkRequest.model_validate_json(env.body, by_alias=True)))
        except (InvalidChunk, ValueError) as e:
            answers[i].refusal = f"{env.message_type}: {e}"
    store.store(conn, uploads)
    budget = serve_budget
    known: dict[tuple[str, str, str], list[store.Reader]] = {}
    for i, request in requests:
        requester = envelopes[i].owner
        key = (requester, request.sender, request.sha256)
        if key not in known:
            known[key] = store.readers(conn, requester, request.sender, request.sha256)
        through = known[key]
        if not through:
            answers[i].refusal = (
                f"{CHUNK_REQUEST_SCHEMA}: {requester!r} was delivered no document from "
                f"{request.sender!r} with an attachment of SHA-256 {request.sha256}"
            )
            continue
        if all(r.state == states.FAILED for r in through):
            answers[i].publishes.append(_refused(envelopes[i], request, through))
            continue
        if budget <= 0:
            log.info("chunks.deferred", requester=requester, sha256=request.sha256)
            continue
        for chunk in store.read(
            conn, request.sender, request.sha256, request.from_offset, request.count
        ):
            if budget <= 0:
                break
            budget -= len(chunk.data)
            answers[i].publishes.append(_chunk_for(requester, chunk))
    return answers


def _chunk_for(requester: str, chunk: store.StoredChunk) -> Outgoing:
    header = ChunkHeader(
        sha256=chunk.sha256,
        size=chunk.size,
        offset=chunk.offset,
        length=len(chunk.data),
        sender=chunk.submitted_by,
    )
    return Outgoing(
        route_to=requester,
        message_id=hub_id(
            KIND_CHUNK, chunk.submitted_by, chunk.sha256, str(chunk.offset), requester
        ),
        message_type=TYPE_CHUNK,
        body=encode_chunk(header, chunk.data),
    )


def _refused(env: Envelope, request: ChunkRequest, failed: list[store.Reader]) -> Outgoing:
    why = "; ".join(dict.fromkeys(r.last_error or "its delivery failed" for r in failed))
    refused = ChunkRefused(
        sender=request.sender,
        sha256=request.sha256,
        message_ids=[r.message_id for r in failed],
        reason=(
            f"the hub no longer serves the chunks of attachment {request.sha256} from "
            f"{request.sender}: every delivery to {env.owner} naming it has failed ({why}); "
            f"abandon the transfer (the sender was told with a delivery_failed receipt)"
        ),
    )
    log.info("chunks.refused", requester=env.owner, sender=request.sender, sha256=request.sha256)
    return Outgoing(
        route_to=env.owner,
        message_id=hub_id(
            KIND_CHUNK_REFUSED, request.sender, request.sha256, env.owner, env.message_id or ""
        ),
        message_type=TYPE_CHUNK_REFUSED,
        body=refused.model_dump_json(by_alias=True).encode("utf-8"),
        correlation_id=env.message_id,
    )


def missing(conn: Connection, submitted_by: str, document: Document) -> str | None:
    """Why ``document`` cannot be accepted yet (attachment bytes the hub lacks), or None."""
    problems = []
    for a in document.chunked_attachments():
        held = store.stored_bytes(conn, submitted_by, a.sha256)
        if held != a.size:
            problems.append(
                f"attachment {a.name!r}: the hub holds {held} of its {a.size} bytes (SHA-256 "
                f"{a.sha256}); publish all its chunks before the document"
            )
    return "; ".join(problems) or None
