"""The audit log of operator actions: who did what, to what, when, and how it ended."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Connection, insert, select

from relay.db.tables import console_audit

RESEND: Final = "resend"
SUSPEND: Final = "suspend"
RESUME: Final = "resume"

DONE: Final = "done"  # the action changed something
NOTHING: Final = "nothing"  # allowed, but there was nothing to change
FAILED: Final = "failed"  # the action was attempted and failed (detail says why)


@dataclass(frozen=True)
class Entry:
    at: dt.datetime
    username: str
    action: str
    target: str
    outcome: str
    detail: dict[str, Any] | None
    client: str | None


def record(
    conn: Connection,
    *,
    username: str,
    action: str,
    target: str,
    outcome: str,
    detail: dict[str, Any] | None = None,
    client: str | None = None,
) -> None:
    conn.execute(
        insert(console_audit).values(
            username=username,
            action=action,
            target=target,
            outcome=outcome,
            detail=detail,
            client=client,
        )
    )


def recent(conn: Connection, *, limit: int = 200) -> Sequence[Entry]:
    """The latest entries, newest first."""
    rows = conn.execute(
        select(console_audit)
        .order_by(console_audit.c.at.desc(), console_audit.c.id.desc())
        .limit(limit)
    )
    return [
        Entry(
            at=r.at,
            username=r.username,
            action=r.action,
            target=r.target,
            outcome=r.outcome,
            detail=r.detail,
            client=r.client,
        )
        for r in rows
    ]
