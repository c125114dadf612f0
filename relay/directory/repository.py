"""Queries over the ``agencies`` table (SQLAlchemy 2 Core). The caller owns the transaction."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, func, select, update

from relay.db.tables import agencies
from relay.directory.model import Agency


def _agency(row: Any) -> Agency:
    return Agency(
        code=row.code,
        name=row.name,
        host=row.host,
        state=row.state,
        strict_code=row.strict_code,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def get(conn: Connection, code: str, *, for_update: bool = False) -> Agency | None:
    """The agency with ``code``, or None."""
    query = select(agencies).where(agencies.c.code == code)
    if for_update:
        query = query.with_for_update()
    row = conn.execute(query).first()
    return _agency(row) if row is not None else None


def get_many(conn: Connection, codes: Iterable[str]) -> dict[str, Agency]:
    """The agencies among ``codes`` that exist, by code."""
    wanted = list(set(codes))
    if not wanted:
        return {}
    rows = conn.execute(select(agencies).where(agencies.c.code.in_(wanted))).all()
    return {row.code: _agency(row) for row in rows}


def list_agencies(
    conn: Connection, *, host: str | None = None, limit: int | None = None
) -> Sequence[Agency]:
    """Agencies ordered by code; with ``host``, the units that host serves."""
    query = select(agencies).order_by(agencies.c.code)
    if host is not None:
        query = query.where(agencies.c.host == host)
    if limit is not None:
        query = query.limit(limit)
    return [_agency(row) for row in conn.execute(query)]


def count_hosted(conn: Connection, host: str) -> int:
    """How many units ``host`` receives for."""
    return int(
        conn.execute(
            select(func.count()).select_from(agencies).where(agencies.c.host == host)
        ).scalar_one()
    )


def insert(conn: Connection, agency: Agency) -> None:
    conn.execute(
        agencies.insert().values(
            code=agency.code,
            name=agency.name,
            host=agency.host,
            state=agency.state,
            strict_code=agency.strict_code,
        )
    )


def set_state(conn: Connection, code: str, state: str) -> None:
    conn.execute(
        update(agencies).where(agencies.c.code == code).values(state=state, updated_at=func.now())
    )
