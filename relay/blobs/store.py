"""Chunk rows in PostgreSQL: the hub's content-addressed store of attachment bytes.

Why chunk rows and not large objects (DESIGN §10): a chunk is written with one idempotent
``INSERT … ON CONFLICT DO NOTHING`` in the same transaction as the rest of its batch, so a
chunk redelivered after a crash is stored once and nothing is half-written; a large object
would need its own transaction discipline (``lo_put`` at an offset is not idempotent with
respect to "is this chunk stored?") and a separate clean-up of orphans. Rows are also what
retention can delete with one ``DELETE … WHERE stored_at < …``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, delete, func, select, text, tuple_
from sqlalchemy.dialects.postgresql import insert

from relay.db.tables import blob_chunks


@dataclass(frozen=True, slots=True)
class StoredChunk:
    submitted_by: str
    sha256: str
    size: int
    offset: int
    data: bytes | memoryview


def store(conn: Connection, chunks: Sequence[StoredChunk]) -> int:
    """Store chunks (a chunk already stored is left as it is); returns how many were new.

    One statement per chunk: a multi-row statement would copy every chunk of the batch into
    one query buffer at once (a batch of outbox messages can hold 100 MiB of chunks).
    """
    stmt = insert(blob_chunks).on_conflict_do_nothing()
    new = 0
    for c in chunks:
        result = conn.execute(
            stmt,
            {
                "submitted_by": c.submitted_by,
                "sha256": c.sha256,
                "offset": c.offset,
                "size": c.size,
                "length": len(c.data),
                "data": c.data,
            },
        )
        new += result.rowcount or 0
    return new


def stored_bytes(conn: Connection, submitted_by: str, sha256: str) -> int:
    """How many bytes of the attachment ``sha256`` from ``submitted_by`` the hub holds."""
    total = conn.execute(
        select(func.coalesce(func.sum(blob_chunks.c.length), 0)).where(
            blob_chunks.c.submitted_by == submitted_by, blob_chunks.c.sha256 == sha256
        )
    ).scalar_one()
    return int(total)


def read(
    conn: Connection, submitted_by: str, sha256: str, from_offset: int, count: int
) -> Iterator[StoredChunk]:
    """Up to ``count`` stored chunks of ``sha256``, from the one holding ``from_offset`` on.

    One query per chunk: libpq holds a whole result set in memory, so a chunk is fetched only
    when the caller wants it (and the caller stops when its budget is spent).
    """
    key = (blob_chunks.c.submitted_by == submitted_by, blob_chunks.c.sha256 == sha256)
    offsets = conn.execute(
        select(blob_chunks.c.offset)
        .where(*key, blob_chunks.c.offset + blob_chunks.c.length > from_offset)
        .order_by(blob_chunks.c.offset)
        .limit(count)
    ).scalars()
    for offset in list(offsets):
        row = conn.execute(
            select(blob_chunks.c.size, blob_chunks.c.data).where(
                *key, blob_chunks.c.offset == offset
            )
        ).one()
        yield StoredChunk(submitted_by, sha256, int(row.size), int(offset), row.data)


_READERS = text(
    "SELECT d.message_id, d.state, d.last_error FROM deliveries d"
    " JOIN documents doc ON doc.id = d.document_pk"
    " WHERE d.route_to = :requester AND doc.submitted_by = :sender"
    " AND position(:needle IN doc.payload) > 0 ORDER BY d.id DESC LIMIT :limit"
).bindparams(bindparam("needle", type_=blob_chunks.c.data.type))


@dataclass(frozen=True, slots=True)
class Reader:
    """A delivery through which a recipient may read an attachment's chunks."""

    message_id: str
    state: str
    last_error: str | None


def readers(
    conn: Connection, requester: str, sender: str, sha256: str, limit: int = 50
) -> list[Reader]:
    """The deliveries to ``requester`` of documents from ``sender`` naming ``sha256`` (none:
    it may not read the attachment)."""
    rows = conn.execute(
        _READERS,
        {
            "requester": requester,
            "sender": sender,
            "needle": sha256.encode("ascii"),
            "limit": limit,
        },
    ).all()
    return [Reader(r.message_id, r.state, r.last_error) for r in rows]


# -- what stored documents name, and retention ----------------------------------------------


@dataclass(frozen=True, slots=True)
class Chunked:
    """An attachment that travels in chunks, as a stored document names it."""

    name: str
    size: int
    sha256: str

    def words(self) -> str:
        return f"{self.name!r} ({self.size:,} bytes, SHA-256 {self.sha256})"


def chunked_attachments(payload: bytes) -> list[Chunked]:
    """The chunked attachments a stored document's JSON names (it was checked at intake; a
    payload that does not read names none)."""
    try:
        attachments = json.loads(payload).get("attachments") or []
    except (ValueError, AttributeError):
        return []
    return [
        Chunked(str(a.get("name")), int(a.get("size") or 0), str(a.get("sha256")))
        for a in attachments
        if isinstance(a, dict) and a.get("transfer") == "chunks"
    ]


_NAMED = text(
    "SELECT 1 FROM documents WHERE submitted_by = :agency AND payload_removed_at IS NULL"
    " AND position(:needle IN payload) > 0 LIMIT 1"
).bindparams(bindparam("needle", type_=blob_chunks.c.data.type))


def drop_unreferenced(conn: Connection, keys: Iterable[tuple[str, str]]) -> tuple[int, int]:
    """Delete the chunks of each (submitting agency, SHA-256) that no document of that agency
    still keeping its payload names (retention keeps a payload while a delivery may need it,
    so the chunks follow the same rule); returns (rows, bytes) deleted.

    A document names an attachment by its SHA-256 in its JSON: a byte search over the
    agency's kept payloads, one per key (the keys are few: one per large attachment)."""
    rows = size = 0
    for agency, sha256 in keys:
        needle = sha256.encode("ascii")
        if conn.execute(_NAMED, {"agency": agency, "needle": needle}).first() is not None:
            continue
        lengths = conn.execute(
            delete(blob_chunks)
            .where(blob_chunks.c.submitted_by == agency, blob_chunks.c.sha256 == sha256)
            .returning(blob_chunks.c.length)
        ).scalars()
        for n in lengths:
            rows, size = rows + 1, size + int(n)
    return rows, size


def stored_before(
    conn: Connection, cutoff: dt.datetime, *, after: tuple[str, str], limit: int
) -> list[tuple[str, str]]:
    """Up to ``limit`` (submitting agency, SHA-256) after ``after`` whose chunks were all
    stored before ``cutoff`` (a transfer still being uploaded has newer ones)."""
    key = tuple_(blob_chunks.c.submitted_by, blob_chunks.c.sha256)
    rows = conn.execute(
        select(blob_chunks.c.submitted_by, blob_chunks.c.sha256)
        .where(key > tuple_(*after))
        .group_by(blob_chunks.c.submitted_by, blob_chunks.c.sha256)
        .having(func.max(blob_chunks.c.stored_at) < cutoff)
        .order_by(blob_chunks.c.submitted_by, blob_chunks.c.sha256)
        .limit(limit)
    ).all()
    return [(r.submitted_by, r.sha256) for r in rows]
