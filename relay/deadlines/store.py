"""Due times and overdue deliveries in PostgreSQL (SQLAlchemy Core)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from sqlalchemy import Connection, Engine, and_, func, or_, select, text, update

from relay.db.tables import deliveries, documents
from relay.deadlines.calendar import WorkCalendar, due_times
from relay.domain import states

#: States in which the recipient's 01 is still awaited. ``failed`` is left out: the sender got
#: a ``delivery_failed`` receipt already and ``lienthong failures`` lists it.
AWAITING_ACK: Final = (states.PENDING, states.QUEUED, states.RETRYING)
#: States in which its 03 is still awaited.
AWAITING_REGISTRATION: Final = (*AWAITING_ACK, states.DELIVERED)

ACK: Final = "01"
REGISTRATION: Final = "03"


_SET_DUE_TIMES = text(
    "UPDATE deliveries SET ack_due_at = v.ack, register_due_at = v.reg, urgent = v.urg "
    "FROM unnest(CAST(:ids AS bigint[]), CAST(:acks AS timestamptz[]), "
    "CAST(:registers AS timestamptz[]), CAST(:urgents AS boolean[])) AS v(did, ack, reg, urg) "
    "WHERE deliveries.id = v.did"
)


def fill_due_times(
    conn: Connection,
    calendar: WorkCalendar,
    urgent_seconds: float,
    *,
    limit: int = 1000,
) -> int:
    """Give up to ``limit`` deliveries without due times their due times; returns how many.

    ``SKIP LOCKED``: the relay's job and an operator's ``lienthong overdue`` may run at once.
    """
    rows = conn.execute(
        select(deliveries.c.id, deliveries.c.created_at, documents.c.priority)
        .join(documents, documents.c.id == deliveries.c.document_pk)
        .where(deliveries.c.ack_due_at.is_(None))
        .order_by(deliveries.c.id)
        .limit(limit)
        .with_for_update(of=deliveries, skip_locked=True)
    ).all()
    if not rows:
        return 0
    ids, acks, registers, urgents = [], [], [], []
    for r in rows:
        due = due_times(r.created_at, r.priority, calendar, urgent_seconds)
        ids.append(r.id)
        acks.append(due.ack)
        registers.append(due.register)
        urgents.append(due.urgent)
    # One statement for the lot (an executemany sent one UPDATE per delivery: as many
    # statements as documents delivered, on the relay's hot database).
    conn.execute(
        _SET_DUE_TIMES, {"ids": ids, "acks": acks, "registers": registers, "urgents": urgents}
    )
    return len(rows)


def fill_all_due_times(
    engine: Engine, calendar: WorkCalendar, urgent_seconds: float, *, batch: int = 1000
) -> int:
    """Every delivery without due times gets them, ``batch`` per transaction (after an upgrade
    an existing hub has many: no long transaction holds their rows)."""
    total = 0
    while True:
        with engine.begin() as conn:
            n = fill_due_times(conn, calendar, urgent_seconds, limit=batch)
        total += n
        if n < batch:
            return total


@dataclass(frozen=True)
class Overdue:
    """A delivery whose 01 or 03 is past its due time."""

    delivery_id: int
    document_pk: int
    document_id: str
    submission_id: str
    sender: str
    submitted_by: str
    recipient: str
    route_to: str
    state: str
    status_code: str  # the status that is late: 01 or 03
    due_at: dt.datetime
    urgent: bool
    notified: bool

    def late(self, now: dt.datetime) -> dt.timedelta:
        return now - self.due_at


def late_status(
    state: str,
    ack_due_at: dt.datetime | None,
    register_due_at: dt.datetime | None,
    now: dt.datetime,
) -> str | None:
    """The status (01 or 03) a delivery in ``state`` is late with at ``now``, or None: the rule
    of :func:`overdue_deliveries` for one delivery already read (the console's marks)."""
    if state in AWAITING_ACK and ack_due_at is not None and ack_due_at < now:
        return ACK
    if state == states.DELIVERED and register_due_at is not None and register_due_at < now:
        return REGISTRATION
    return None


def _overdue_condition(now: dt.datetime) -> object:
    return or_(
        and_(deliveries.c.state.in_(AWAITING_ACK), deliveries.c.ack_due_at < now),
        and_(deliveries.c.state == states.DELIVERED, deliveries.c.register_due_at < now),
    )


def overdue_deliveries(
    conn: Connection,
    now: dt.datetime,
    *,
    agency: str | None = None,
    only_unnotified: bool = False,
    limit: int | None = None,
    lock: bool = False,
) -> list[Overdue]:
    """Deliveries past due at ``now``, the longest overdue first.

    ``agency``: only deliveries that agency has to answer (addressed to it, or to a unit it
    receives for).
    """
    query = (
        select(
            deliveries.c.id,
            deliveries.c.document_pk,
            documents.c.document_id,
            documents.c.message_id,
            documents.c.sender,
            documents.c.submitted_by,
            deliveries.c.recipient,
            deliveries.c.route_to,
            deliveries.c.state,
            deliveries.c.ack_due_at,
            deliveries.c.register_due_at,
            deliveries.c.urgent,
            deliveries.c.overdue_notified_at,
        )
        .join(documents, documents.c.id == deliveries.c.document_pk)
        .where(
            deliveries.c.state.in_(AWAITING_REGISTRATION),
            deliveries.c.ack_due_at < now,  # never later than register_due_at: the index
            _overdue_condition(now),  # type: ignore[arg-type]
        )
        .order_by(deliveries.c.ack_due_at, deliveries.c.id)
    )
    if agency is not None:
        query = query.where(or_(deliveries.c.recipient == agency, deliveries.c.route_to == agency))
    if only_unnotified:
        query = query.where(deliveries.c.overdue_notified_at.is_(None))
    if limit is not None:
        query = query.limit(limit)
    if lock:
        query = query.with_for_update(of=deliveries, skip_locked=True)
    found = []
    for r in conn.execute(query):
        awaiting_ack = r.state in AWAITING_ACK
        found.append(
            Overdue(
                delivery_id=r.id,
                document_pk=r.document_pk,
                document_id=r.document_id,
                submission_id=r.message_id,
                sender=r.sender,
                submitted_by=r.submitted_by,
                recipient=r.recipient,
                route_to=r.route_to,
                state=r.state,
                status_code=ACK if awaiting_ack else REGISTRATION,
                due_at=r.ack_due_at if awaiting_ack else r.register_due_at,
                urgent=bool(r.urgent),
                notified=r.overdue_notified_at is not None,
            )
        )
    return found


def count_overdue(conn: Connection, now: dt.datetime) -> dict[str, int]:
    """How many deliveries are overdue, by the status that is late (01, 03)."""
    awaiting_ack = deliveries.c.state.in_(AWAITING_ACK)
    row = conn.execute(
        select(
            func.count().filter(and_(awaiting_ack, deliveries.c.ack_due_at < now)),
            func.count().filter(
                and_(deliveries.c.state == states.DELIVERED, deliveries.c.register_due_at < now)
            ),
        ).where(deliveries.c.state.in_(AWAITING_REGISTRATION), deliveries.c.ack_due_at < now)
    ).one()
    return {ACK: int(row[0]), REGISTRATION: int(row[1])}


def mark_notified(conn: Connection, delivery_ids: Sequence[int], now: dt.datetime) -> None:
    if delivery_ids:
        conn.execute(
            update(deliveries)
            .where(deliveries.c.id.in_(delivery_ids))
            .values(overdue_notified_at=now)
        )
