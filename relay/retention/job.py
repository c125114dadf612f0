"""One retention run, in batches with a checkpoint (see the package docstring)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import structlog
from sqlalchemy import (
    Connection,
    Engine,
    LargeBinary,
    and_,
    exists,
    func,
    literal,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert

from relay.blobs import store as blobs
from relay.blobs.store import chunked_attachments
from relay.config import Settings
from relay.db.tables import deliveries, documents, operation_checkpoints
from relay.domain import states

log = structlog.get_logger()

#: The checkpoint row of the retention run.
CHECKPOINT: Final = "retention"

#: Delivery states in which the hub may publish the document again (see the package docstring).
NEEDS_PAYLOAD: Final = (
    states.PENDING,
    states.QUEUED,
    states.RETRYING,
    states.FAILED,
    states.RECALL_REQUESTED,
)


@dataclass
class RetentionResult:
    removed: int = 0  # payloads emptied
    bytes_removed: int = 0  # their size as stored (compressed)
    chunks_removed: int = 0  # blob_chunks rows deleted (issue 17)
    chunk_bytes_removed: int = 0  # the attachment bytes they held
    batches: int = 0
    seconds: float = 0.0
    finished: bool = False  # reached the end (the next run starts from the beginning)
    batch_seconds: list[float] = field(default_factory=list)


def _checkpoint(conn: Connection) -> int:
    pos = conn.execute(
        select(operation_checkpoints.c.position).where(operation_checkpoints.c.name == CHECKPOINT)
    ).scalar_one_or_none()
    return int(pos or 0)


def _save_checkpoint(conn: Connection, position: int) -> None:
    stmt = pg_insert(operation_checkpoints).values(name=CHECKPOINT, position=position)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[operation_checkpoints.c.name],
            set_={"position": stmt.excluded.position, "updated_at": func.now()},
        )
    )


def removable(cutoff: dt.datetime | None) -> object:
    """Documents whose payload may go (a SQL condition on ``documents``); without a cutoff,
    only those taken back."""
    needed = exists().where(
        deliveries.c.document_pk == documents.c.id, deliveries.c.state.in_(NEEDS_PAYLOAD)
    )
    recalled = exists().where(
        deliveries.c.document_pk == documents.c.id, deliveries.c.state == states.RECALLED
    )
    old_or_recalled = (
        recalled if cutoff is None else or_(documents.c.received_at < cutoff, recalled)
    )
    return and_(documents.c.payload_removed_at.is_(None), old_or_recalled, ~needed)


#: The payload of a document that may name chunked attachments (None for the others): the
#: JSON of a chunked attachment says ``"transfer":"chunks"``; the rest is read in Python.
_CHUNKED_PAYLOAD = literal_column(
    "CASE WHEN position('\"chunks\"'::bytea IN documents.payload) > 0 THEN documents.payload END",
    LargeBinary,
)


def remove_batch(
    conn: Connection, low: int, high: int, cutoff: dt.datetime | None
) -> tuple[int, int, list[tuple[str, str]]]:
    """Empty the removable payloads among ids ``(low, high]``: (how many, bytes as stored,
    the (submitting agency, SHA-256) of the chunked attachments they named)."""
    target = (
        select(
            documents.c.id,
            documents.c.submitted_by,
            func.pg_column_size(documents.c.payload).label("size"),
            _CHUNKED_PAYLOAD.label("chunked"),
        )
        .where(documents.c.id > low, documents.c.id <= high, removable(cutoff))  # type: ignore[arg-type]
        .with_for_update(of=documents, skip_locked=True)
        .cte("target")
    )
    rows = conn.execute(
        update(documents)
        .where(documents.c.id == target.c.id)
        .values(payload=literal(b""), payload_removed_at=func.now())
        .returning(target.c.size, target.c.submitted_by, target.c.chunked)
    ).all()
    named = {
        (r.submitted_by, a.sha256)
        for r in rows
        if r.chunked
        for a in chunked_attachments(bytes(r.chunked))
    }
    return len(rows), sum(int(r.size or 0) for r in rows), sorted(named)


def run_retention(
    engine: Engine,
    settings: Settings,
    *,
    days: int | None,
    batch_size: int | None = None,
    stop_after_seconds: float | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    now: dt.datetime | None = None,
) -> RetentionResult:
    """Run from the checkpoint to the end (or until ``should_stop``/``stop_after_seconds``).

    ``days``: payloads older than this go; None: only those of documents taken back.
    """
    batch = batch_size or settings.retention_batch_size
    cutoff = None
    if days is not None:
        cutoff = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(days=days)
    result = RetentionResult()
    started = time.monotonic()
    with engine.connect() as conn:
        top = int(conn.execute(select(func.coalesce(func.max(documents.c.id), 0))).scalar_one())
        position = _checkpoint(conn)
    if position >= top:
        position = 0
    while position < top:
        if should_stop() or (
            stop_after_seconds is not None and time.monotonic() - started > stop_after_seconds
        ):
            break
        high = min(position + batch, top)
        t0 = time.monotonic()
        with engine.begin() as conn:
            n, size, named = remove_batch(conn, position, high, cutoff)
            # The chunks of the attachments those documents named go with their payloads,
            # unless another document that keeps its payload names them too.
            rows, chunk_bytes = blobs.drop_unreferenced(conn, named)
            position = high
            _save_checkpoint(conn, 0 if position >= top else position)
        result.batches += 1
        result.removed += n
        result.bytes_removed += size
        result.chunks_removed += rows
        result.chunk_bytes_removed += chunk_bytes
        result.batch_seconds.append(time.monotonic() - t0)
    result.finished = position >= top
    if result.finished and cutoff is not None:
        rows, chunk_bytes = _drop_orphans(engine, cutoff, batch, should_stop)
        result.chunks_removed += rows
        result.chunk_bytes_removed += chunk_bytes
    result.seconds = time.monotonic() - started
    log.info(
        "retention.run",
        removed=result.removed,
        bytes_removed=result.bytes_removed,
        batches=result.batches,
        seconds=round(result.seconds, 3),
        finished=result.finished,
        chunks_removed=result.chunks_removed,
        chunk_bytes_removed=result.chunk_bytes_removed,
        cutoff=cutoff.isoformat() if cutoff else None,
    )
    return result


def _drop_orphans(
    engine: Engine, cutoff: dt.datetime, batch: int, should_stop: Callable[[], bool]
) -> tuple[int, int]:
    """Chunks stored before ``cutoff`` that no document keeping its payload names: uploaded
    for a document that never came, or left from before chunks went with their payloads.
    Returns (rows, bytes) deleted."""
    rows = size = 0
    after: tuple[str, str] = ("", "")
    while not should_stop():
        with engine.begin() as conn:
            groups = blobs.stored_before(conn, cutoff, after=after, limit=batch)
            n, b = blobs.drop_unreferenced(conn, groups)
        rows, size = rows + n, size + b
        if len(groups) < batch:
            break
        after = groups[-1]
    return rows, size
