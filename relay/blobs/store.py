"""Chunk rows in PostgreSQL: the hub's content-addressed store of attachment bytes.

Why chunk rows and not large objects (DESIGN §10): a chunk is written with one idempotent
``INSERT … ON CONFLICT DO NOTHING`` in the same transaction as the rest of its batch, so a
chunk redelivered after a crash is stored once and nothing is half-written; a large object
would need its own transaction discipline (``lo_put`` at an offset is not idempotent with
respect to "is this chunk stored?") and a separate clean-up of orphans. Rows are also what
retention can delete with one ``DELETE … WHERE stored_at < …``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, func, select, text
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


_MAY_READ = text(
    "SELECT 1 FROM deliveries d JOIN documents doc ON doc.id = d.document_pk"
    " WHERE d.route_to = :requester AND doc.submitted_by = :sender"
    " AND position(:needle IN doc.payload) > 0 LIMIT 1"
).bindparams(bindparam("needle", type_=blob_chunks.c.data.type))


def may_read(conn: Connection, requester: str, sender: str, sha256: str) -> bool:
    """Whether ``requester`` was delivered a document from ``sender`` naming ``sha256``."""
    row = conn.execute(
        _MAY_READ, {"requester": requester, "sender": sender, "needle": sha256.encode("ascii")}
    ).first()
    return row is not None
