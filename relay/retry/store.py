"""SQL for retries: deliveries, their schedule, destination health, events and receipts.

Every function takes a connection inside the caller's transaction; none commits. Times come
from PostgreSQL's ``now()`` so that several relays share one clock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, exists, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from relay.db.tables import deliveries, destinations, documents, events, receipts
from relay.domain import events as ev
from relay.domain import states
from relay.retry.policy import REACHED_STATES


@dataclass(frozen=True)
class Delivery:
    """A delivery with what is needed to publish it again and to tell its sender."""

    id: int
    document_pk: int
    recipient: str
    route_to: str
    message_id: str
    state: str
    attempts: int
    submission_id: str  # documents.message_id
    document_id: str
    sender: str
    submitted_by: str
    #: the document's edXML priority: an urgent one is sent again in the urgent lane
    priority: int | None = None


def _delivery_columns() -> list[Any]:
    return [
        deliveries.c.id,
        deliveries.c.document_pk,
        deliveries.c.recipient,
        deliveries.c.route_to,
        deliveries.c.message_id,
        deliveries.c.state,
        deliveries.c.attempts,
        documents.c.message_id.label("submission_id"),
        documents.c.document_id,
        documents.c.sender,
        documents.c.submitted_by,
        documents.c.priority,
    ]


def _to_delivery(row: Any) -> Delivery:
    return Delivery(
        id=row.id,
        document_pk=row.document_pk,
        recipient=row.recipient,
        route_to=row.route_to,
        message_id=row.message_id,
        state=row.state,
        attempts=row.attempts,
        submission_id=row.submission_id,
        document_id=row.document_id,
        sender=row.sender,
        submitted_by=row.submitted_by,
        priority=row.priority,
    )


def lock_delivery(conn: Connection, message_id: str) -> Delivery | None:
    """The delivery whose copy carries ``message_id``, locked for this transaction."""
    row = conn.execute(
        select(*_delivery_columns())
        .join(documents, documents.c.id == deliveries.c.document_pk)
        .where(deliveries.c.message_id == message_id)
        .with_for_update(of=deliveries)
    ).first()
    return _to_delivery(row) if row else None


def add_event(
    conn: Connection,
    *,
    kind: str,
    document_pk: int | None = None,
    delivery_id: int | None = None,
    actor: str | None = None,
    description: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    conn.execute(
        insert(events).values(
            document_pk=document_pk,
            delivery_id=delivery_id,
            kind=kind,
            actor=actor,
            description=description,
            detail=detail,
        )
    )


def schedule_retry(
    conn: Connection, delivery_id: int, *, attempts: int, error: str, delay: float
) -> dt.datetime:
    """State ``retrying`` with the next attempt ``delay`` seconds from now; returns that time."""
    at: dt.datetime = conn.execute(
        update(deliveries)
        .where(deliveries.c.id == delivery_id)
        .values(
            state=states.RETRYING,
            attempts=attempts,
            last_error=error,
            next_attempt_at=func.now() + dt.timedelta(seconds=delay),
            updated_at=func.now(),
        )
        .returning(deliveries.c.next_attempt_at)
    ).scalar_one()
    return at


def hold(conn: Connection, delivery_id: int, *, error: str) -> None:
    """``retrying`` with no next attempt: released when its destination comes back."""
    conn.execute(
        update(deliveries)
        .where(deliveries.c.id == delivery_id)
        .values(
            state=states.RETRYING, last_error=error, next_attempt_at=None, updated_at=func.now()
        )
    )


def mark_failed(conn: Connection, delivery_id: int, *, attempts: int, error: str) -> None:
    conn.execute(
        update(deliveries)
        .where(deliveries.c.id == delivery_id)
        .values(
            state=states.FAILED,
            attempts=attempts,
            last_error=error,
            next_attempt_at=None,
            updated_at=func.now(),
        )
    )


def mark_queued(conn: Connection, delivery_id: int) -> None:
    """A retried or resent copy is in the inbox: ``queued``, unless the recipient already
    reported on it (forward only)."""
    conn.execute(
        update(deliveries)
        .where(
            deliveries.c.id == delivery_id,
            deliveries.c.state.in_([states.RETRYING, states.FAILED, states.PENDING]),
        )
        .values(state=states.QUEUED, next_attempt_at=None, updated_at=func.now())
    )


def store_receipt(
    conn: Connection,
    *,
    receipt_id: str,
    agency: str,
    in_reply_to: str,
    kind: str,
    body: dict[str, Any],
    publish_pending: bool = False,
) -> None:
    """``publish_pending``: stored marked as owed to ``agency`` until the broker confirms it
    (:mod:`relay.retry.outbox`)."""
    conn.execute(
        pg_insert(receipts)
        .values(
            receipt_id=receipt_id,
            agency=agency,
            in_reply_to=in_reply_to,
            kind=kind,
            body=body,
            publish_pending_since=func.now() if publish_pending else None,
        )
        .on_conflict_do_nothing(index_elements=[receipts.c.receipt_id])
    )


def latest_receipt(
    conn: Connection, *, in_reply_to: str, kind: str, recipient: str
) -> tuple[str, str, dict[str, Any]] | None:
    """(receipt_id, agency, body) of the newest receipt of ``kind`` about ``recipient``."""
    row = conn.execute(
        select(receipts.c.receipt_id, receipts.c.agency, receipts.c.body)
        .where(
            receipts.c.in_reply_to == in_reply_to,
            receipts.c.kind == kind,
            receipts.c.body["recipient"].astext == recipient,
        )
        .order_by(receipts.c.id.desc())
        .limit(1)
    ).first()
    return (row.receipt_id, row.agency, row.body) if row else None


def count_events(conn: Connection, delivery_id: int, kind: str) -> int:
    n: int = conn.execute(
        select(func.count())
        .select_from(events)
        .where(events.c.delivery_id == delivery_id, events.c.kind == kind)
    ).scalar_one()
    return n


# Destinations -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Destination:
    code: str
    state: str
    consecutive_failures: int
    down_since: dt.datetime | None
    last_probe_at: dt.datetime | None
    probe_delivery_id: int | None
    last_error: str | None


def lock_destination(conn: Connection, code: str) -> Destination:
    """The destination row of ``code`` (created ``up`` if new), locked for this transaction."""
    conn.execute(
        pg_insert(destinations)
        .values(code=code)
        .on_conflict_do_nothing(index_elements=[destinations.c.code])
    )
    row = conn.execute(
        select(destinations).where(destinations.c.code == code).with_for_update()
    ).one()
    return Destination(
        code=row.code,
        state=row.state,
        consecutive_failures=row.consecutive_failures,
        down_since=row.down_since,
        last_probe_at=row.last_probe_at,
        probe_delivery_id=row.probe_delivery_id,
        last_error=row.last_error,
    )


def note_destination_failure(conn: Connection, code: str, error: str) -> None:
    conn.execute(
        update(destinations)
        .where(destinations.c.code == code)
        .values(
            consecutive_failures=destinations.c.consecutive_failures + 1,
            last_error=error,
            updated_at=func.now(),
        )
    )


def failing_deliveries(conn: Connection, route_to: str, *, window_seconds: float) -> int:
    """Different deliveries to ``route_to`` that came back within the window and have not
    reached its DMS since (nor failed for good).

    Counted from the ``returned`` events rather than from the current states: a delivery that
    was just published again is still failing, even though it is ``queued`` for a moment.
    """
    n: int = conn.execute(
        select(func.count(func.distinct(events.c.delivery_id)))
        .select_from(events)
        .join(deliveries, deliveries.c.id == events.c.delivery_id)
        .where(
            events.c.kind == ev.RETURNED,
            events.c.actor == route_to,
            events.c.at > func.now() - dt.timedelta(seconds=window_seconds),
            deliveries.c.state.in_(sorted(states.OPEN_STATES)),
        )
    ).scalar_one()
    return n


def seconds_since_last_return(conn: Connection, route_to: str) -> float | None:
    """Seconds since a copy to ``route_to`` last came back (None: never)."""
    value: float | None = conn.execute(
        select(func.extract("epoch", func.now() - func.max(events.c.at))).where(
            events.c.kind == ev.RETURNED, events.c.actor == route_to
        )
    ).scalar_one_or_none()
    return None if value is None else float(value)


def held_deliveries(conn: Connection, route_to: str) -> int:
    """Deliveries to ``route_to`` waiting for another attempt."""
    n: int = conn.execute(
        select(func.count())
        .select_from(deliveries)
        .where(deliveries.c.route_to == route_to, deliveries.c.state == states.RETRYING)
    ).scalar_one()
    return n


def mark_down(conn: Connection, code: str) -> int:
    """Mark ``code`` down and hold every retry scheduled for it; returns how many were held."""
    conn.execute(
        update(destinations)
        .where(destinations.c.code == code)
        .values(
            state="down",
            down_since=func.now(),
            last_probe_at=func.now(),  # the first probe waits one probe interval
            probe_delivery_id=None,
            updated_at=func.now(),
        )
    )
    held = conn.execute(
        update(deliveries)
        .where(deliveries.c.route_to == code, deliveries.c.state == states.RETRYING)
        .values(next_attempt_at=None, updated_at=func.now())
    )
    return held.rowcount or 0


def mark_up(conn: Connection, code: str) -> int:
    """Mark ``code`` up and release its held deliveries now; returns how many were released."""
    conn.execute(
        update(destinations)
        .where(destinations.c.code == code)
        .values(
            state="up",
            consecutive_failures=0,
            down_since=None,
            probe_delivery_id=None,
            updated_at=func.now(),
        )
    )
    released = conn.execute(
        update(deliveries)
        .where(deliveries.c.route_to == code, deliveries.c.state == states.RETRYING)
        .values(next_attempt_at=func.now(), updated_at=func.now())
    )
    return released.rowcount or 0


def lock_down_destinations(conn: Connection, limit: int) -> list[Destination]:
    """Down destinations no other relay is looking at right now."""
    rows = (
        conn.execute(
            select(destinations.c.code)
            .where(destinations.c.state == "down")
            .order_by(destinations.c.code)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        .scalars()
        .all()
    )
    return [lock_destination(conn, code) for code in rows]


def delivery_state(conn: Connection, delivery_id: int) -> str | None:
    state: str | None = conn.execute(
        select(deliveries.c.state).where(deliveries.c.id == delivery_id)
    ).scalar_one_or_none()
    return state


def reached_since(conn: Connection, code: str, since: dt.datetime) -> bool:
    """Has any delivery to ``code`` reached its DMS (status 01 or later) since ``since``?"""
    found: bool = conn.execute(
        select(
            exists().where(
                deliveries.c.route_to == code,
                deliveries.c.state.in_(sorted(REACHED_STATES)),
                deliveries.c.updated_at >= since,
            )
        )
    ).scalar_one()
    return found


def seconds_since(conn: Connection, at: dt.datetime) -> float:
    value: float = conn.execute(select(func.extract("epoch", func.now() - at))).scalar_one()
    return float(value)


def set_probe(conn: Connection, code: str, delivery_id: int) -> None:
    conn.execute(
        update(destinations)
        .where(destinations.c.code == code)
        .values(probe_delivery_id=delivery_id, last_probe_at=func.now(), updated_at=func.now())
    )


# The schedule -----------------------------------------------------------------------------


#: Payload bytes one pass over due deliveries loads at most (issue 14): a tick of the retry
#: schedule, a pass of probes, a batch of ``resend``, a batch of the stale-chunked sweep. Each
#: document's payload is read once and shared by all of its deliveries in the pass; the first
#: document is loaded whatever its size. A delivery left out is neither claimed nor leased: it
#: is taken by the next pass. Like ``relay.worker.loop.SWEEP_MAX_BYTES``; read at call time.
PASS_MAX_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class Due:
    delivery: Delivery
    payload: bytes  # the document's one object, shared by its deliveries claimed in a pass


class PayloadBudget:
    """The documents whose payloads one pass loads: each counted once, at most ``max_bytes``
    (:data:`PASS_MAX_BYTES`) between them, the first whatever its size."""

    def __init__(self, max_bytes: int | None = None) -> None:
        self.max_bytes = PASS_MAX_BYTES if max_bytes is None else max_bytes
        self.held = 0
        self.documents: set[int] = set()

    def admits(self, document_pk: int, size: int) -> bool:
        """Whether a delivery of ``document_pk`` (``size`` bytes of payload) fits in the pass;
        a document that fits is counted from then on."""
        if document_pk in self.documents:
            return True
        if self.documents and self.held + size > self.max_bytes:
            return False  # the next pass; a later, smaller document may still fit
        self.documents.add(document_pk)
        self.held += size
        return True


def _payload_size() -> Any:
    """The payload's length, read without fetching (or decompressing) the payload."""
    return func.octet_length(documents.c.payload).label("payload_size")


def _payloads(conn: Connection, document_pks: Iterable[int]) -> dict[int, bytes]:
    """The payloads of these documents, each read once."""
    pks = sorted(set(document_pks))
    if not pks:
        return {}
    rows = conn.execute(select(documents.c.id, documents.c.payload).where(documents.c.id.in_(pks)))
    return {pk: bytes(payload) for pk, payload in rows}


def with_payloads(conn: Connection, claimed: Sequence[Delivery]) -> list[Due]:
    """``claimed`` with their payloads: one bytes object per document, shared by its
    deliveries (a 20 MB document due for 95 recipients is 20 MB here, not 1.9 GB)."""
    payloads = _payloads(conn, (d.document_pk for d in claimed))
    return [Due(d, payloads[d.document_pk]) for d in claimed]


def _down_codes() -> Any:
    return select(destinations.c.code).where(destinations.c.state == "down")


def claim_due(conn: Connection, limit: int, max_bytes: int | None = None) -> list[Due]:
    """Retries whose time has come, locked so that no other relay sends them too.

    ``FOR UPDATE SKIP LOCKED``: a relay that finds a row locked by another skips it instead of
    waiting, so several relays share the schedule and each delivery is claimed by one.

    At most ``limit`` deliveries, of documents of at most ``max_bytes`` of payload between
    them (:class:`PayloadBudget`), each payload read once. A due delivery of a document over
    the bound is not returned: the caller leases only what is returned, so it keeps its
    ``next_attempt_at``, its lock ends with this transaction and the next tick takes it.
    """
    rows = conn.execute(
        select(*_delivery_columns(), _payload_size())
        .join(documents, documents.c.id == deliveries.c.document_pk)
        .where(
            deliveries.c.state == states.RETRYING,
            deliveries.c.next_attempt_at <= func.now(),
            deliveries.c.route_to.not_in(_down_codes()),
        )
        .order_by(deliveries.c.next_attempt_at)
        .limit(limit)
        .with_for_update(of=deliveries, skip_locked=True)
    ).all()
    budget = PayloadBudget(max_bytes)
    return with_payloads(
        conn, [_to_delivery(r) for r in rows if budget.admits(r.document_pk, r.payload_size)]
    )


def claim_probe(conn: Connection, code: str, budget: PayloadBudget) -> Delivery | None:
    """The oldest held delivery to ``code``, to try as a probe, if its document fits in the
    pass's ``budget`` (None: nothing is held, or the next pass probes ``code``). The caller
    loads the pass's payloads once with :func:`with_payloads`."""
    row = conn.execute(
        select(*_delivery_columns(), _payload_size())
        .join(documents, documents.c.id == deliveries.c.document_pk)
        .where(deliveries.c.route_to == code, deliveries.c.state == states.RETRYING)
        .order_by(deliveries.c.id)
        .limit(1)
        .with_for_update(of=deliveries, skip_locked=True)
    ).first()
    if row is None or not budget.admits(row.document_pk, row.payload_size):
        return None
    return _to_delivery(row)


def lock_failed(
    conn: Connection,
    document_id: str,
    recipient: str | None = None,
    *,
    exclude: Collection[int] = (),
    max_bytes: int | None = None,
) -> list[Due]:
    """Failed deliveries of every submission of ``document_id`` (optionally one recipient),
    but not those in ``exclude``: of submissions of at most ``max_bytes`` of payload between
    them (the first whatever its size), each payload read once. The rest stay ``failed`` for
    the caller's next batch."""
    conds = [documents.c.document_id == document_id, deliveries.c.state == states.FAILED]
    if recipient is not None:
        conds.append(deliveries.c.recipient == recipient)
    if exclude:
        conds.append(deliveries.c.id.not_in(sorted(exclude)))
    rows = conn.execute(
        select(*_delivery_columns(), _payload_size())
        .join(documents, documents.c.id == deliveries.c.document_pk)
        .where(and_(*conds))
        .order_by(deliveries.c.id)
        .with_for_update(of=deliveries)
    ).all()
    budget = PayloadBudget(max_bytes)
    return with_payloads(
        conn, [_to_delivery(r) for r in rows if budget.admits(r.document_pk, r.payload_size)]
    )


def lease(conn: Connection, delivery_ids: Sequence[int], seconds: float) -> None:
    """Keep claimed ``retrying`` rows off every relay's schedule for ``seconds`` (while they
    are being published outside the claiming transaction)."""
    if not delivery_ids:
        return
    conn.execute(
        update(deliveries)
        .where(deliveries.c.id.in_(list(delivery_ids)))
        .values(next_attempt_at=func.now() + dt.timedelta(seconds=seconds), updated_at=func.now())
    )


def reset_attempts(conn: Connection, delivery_ids: Sequence[int]) -> None:
    conn.execute(
        update(deliveries)
        .where(deliveries.c.id.in_(list(delivery_ids)))
        .values(attempts=0, updated_at=func.now())
    )


# Chunked transfers that never finish (issue 17, relay/blobs/expiry.py) -------------------------


@dataclass(frozen=True)
class Stale:
    """A ``queued`` delivery of a document whose attachments travel in chunks, left too long."""

    delivery: Delivery
    queued_at: dt.datetime  # when it last became queued (a resend starts the clock again)
    payload: bytes


#: A document whose attachments travel in chunks says so in its JSON (schemas.Attachment);
#: CASE keeps the exact (and costlier) pattern for payloads the cheap byte search found.
_CHUNKED = text(
    "CASE WHEN position('\"chunks\"'::bytea IN documents.payload) > 0"
    " THEN convert_from(documents.payload, 'UTF8') ~ '\"transfer\"\\s*:\\s*\"chunks\"'"
    " ELSE false END"
)


def lock_stale_chunked(
    conn: Connection, older_than_seconds: float, limit: int, max_bytes: int | None = None
) -> list[Stale]:
    """``queued`` deliveries of documents with chunked attachments whose state last changed
    more than ``older_than_seconds`` ago, locked (``SKIP LOCKED``: another relay's sweep takes
    others). The cheap byte search comes first; the exact pattern only on what it found.

    Of documents of at most ``max_bytes`` of payload between them (:class:`PayloadBudget`),
    each payload read once and shared; the others are left out (unlocked when the transaction
    ends, still stale) and a later sweep takes them.
    """
    rows = conn.execute(
        select(*_delivery_columns(), deliveries.c.updated_at, _payload_size())
        .join(documents, documents.c.id == deliveries.c.document_pk)
        .where(
            deliveries.c.state == states.QUEUED,
            deliveries.c.updated_at < func.now() - dt.timedelta(seconds=older_than_seconds),
            _CHUNKED,
        )
        .order_by(deliveries.c.updated_at)
        .limit(limit)
        .with_for_update(of=deliveries, skip_locked=True)
    ).all()
    budget = PayloadBudget(max_bytes)
    taken = [r for r in rows if budget.admits(r.document_pk, r.payload_size)]
    payloads = _payloads(conn, (r.document_pk for r in taken))
    return [Stale(_to_delivery(r), r.updated_at, payloads[r.document_pk]) for r in taken]
