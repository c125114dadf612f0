"""Claiming rows that several relays may work on at once: locked, then leased.

A row is claimed with ``FOR UPDATE SKIP LOCKED`` (another relay's transaction passes it by)
and leased in the same transaction (a column moved so that the query does not find it again
until the lease runs out), so the relay that claimed it may publish it after the commit while
no other relay takes it too; if that relay dies, the row comes back when the lease ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, Select, Table, update


def claim(conn: Connection, query: Select[Any], table: Table, **lease: Any) -> Sequence[Row[Any]]:
    """The rows of ``query`` (which selects ``table``'s ``id``) no other transaction holds,
    locked, with ``lease`` (column values) set on them now."""
    rows = conn.execute(query.with_for_update(skip_locked=True)).all()
    if rows:
        conn.execute(update(table).where(table.c.id.in_([r.id for r in rows])).values(**lease))
    return rows
