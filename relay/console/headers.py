"""Header fields of stored submissions (số/ký hiệu, Priority, dates), read once per document.

``documents.payload`` is the submission as received (JSON of ``lienthong.document/1``). Those
fields are not columns the relay writes, so the console extracts them into
``console_document_headers`` before it lists or searches: :func:`catch_up` takes the documents
that have no row yet, oldest first, a bounded number per call. A payload that is not a document
the console can read still gets a row (all empty), so it is not read again.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import SQLAlchemyError

from relay.db.tables import console_document_headers, documents

log = structlog.get_logger()

#: Documents read per call of :func:`catch_up`.
BATCH = 200
#: How far below the highest document already read :func:`catch_up` looks for gaps: ids are
#: taken in order but committed out of order by concurrent relay workers, so a document may
#: appear below the highest one read. Bounding the look-back keeps each call an index range
#: scan instead of an anti-join over the whole table.
LOOK_BACK = 10_000


@dataclass(frozen=True)
class Headers:
    code_number: str | None = None
    code_notation: str | None = None
    priority: int | None = None
    promulgation_date: dt.date | None = None
    due_date: dt.date | None = None


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and -32768 <= value <= 32767:
        return value
    return None


def _date(value: Any) -> dt.date | None:
    if not isinstance(value, str):
        return None
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        return None


def _object(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def parse(payload: bytes) -> Headers:
    """The header fields of a stored submission; empty ones when it cannot be read."""
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return Headers()
    if not isinstance(data, dict):
        return Headers()
    code, other, prom = (_object(data, key) for key in ("code", "other_info", "promulgation_info"))
    return Headers(
        code_number=_text(code.get("code_number")),
        code_notation=_text(code.get("code_notation")),
        priority=_int(other.get("priority")),
        promulgation_date=_date(prom.get("promulgation_date")),
        due_date=_date(data.get("due_date")),
    )


def keep_up(engine: Engine, stop: threading.Event, *, idle_seconds: float = 5.0) -> None:
    """Read new documents' headers until ``stop`` is set (the console runs it in a thread, so a
    hub with a long history is read once in the background, not page view by page view)."""
    while not stop.is_set():
        try:
            with engine.begin() as conn:
                n = catch_up(conn, batch=BATCH)
        except SQLAlchemyError as e:
            log.warning("console.headers_failed", error=str(e))
            n = 0
        if n < BATCH:
            stop.wait(idle_seconds)


def catch_up(conn: Connection, *, batch: int = BATCH) -> int:
    """Extract the headers of up to ``batch`` documents that have none yet; how many."""
    highest = conn.execute(select(func.max(console_document_headers.c.document_pk))).scalar()
    floor = max(0, (highest or 0) - LOOK_BACK)
    missing = (
        select(documents.c.id, documents.c.payload)
        .where(
            documents.c.id > floor,
            ~select(console_document_headers.c.document_pk)
            .where(console_document_headers.c.document_pk == documents.c.id)
            .exists(),
        )
        .order_by(documents.c.id)
        .limit(batch)
    )
    rows = conn.execute(missing).all()
    for row in rows:
        h = parse(bytes(row.payload))
        conn.execute(
            insert(console_document_headers)
            .values(
                document_pk=row.id,
                code_number=h.code_number,
                code_notation=h.code_notation,
                priority=h.priority,
                promulgation_date=h.promulgation_date,
                due_date=h.due_date,
            )
            .on_conflict_do_nothing()
        )
    return len(rows)
