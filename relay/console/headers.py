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
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.dialects.postgresql import insert

from relay.db.tables import console_document_headers, documents

#: Documents read per call of :func:`catch_up` (a page view pays at most this).
BATCH = 200


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


def catch_up(conn: Connection, *, batch: int = BATCH) -> int:
    """Extract the headers of up to ``batch`` documents that have none yet; how many."""
    missing = (
        select(documents.c.id, documents.c.payload)
        .where(
            ~select(console_document_headers.c.document_pk)
            .where(console_document_headers.c.document_pk == documents.c.id)
            .exists()
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
