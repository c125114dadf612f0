"""Receipts the hub owes an agency and has not seen confirmed (issue: the failed receipt).

A ``delivery_failed`` receipt is stored (``receipts``) in the transaction that fails the
delivery, and published to the submitting agency's inbox once that transaction is committed
(:func:`relay.retry.schedule.send_receipts`). A relay killed between the commit and the
broker's confirm would leave it stored and never sent, so it is stored *marked*
(``receipts.publish_pending_since`` = the time it was stored) and the mark is cleared once the
broker confirmed it, or once it was handed to the bounce schedule (no inbox took it). The retry
schedule of every relay (:func:`relay.retry.schedule.republish_receipts`) claims receipts still
marked ``LIENTHONG_RECEIPT_REPUBLISH_SECONDS`` after they were marked (``SKIP LOCKED``; the mark
is moved to the present, a lease of the same length) and publishes them again with the same
receipt id: at least once, and the sender's adapter records a receipt once per id
(:mod:`adapters.received`). Every function runs inside the caller's transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import Connection, func, select, update

from relay.db.lease import claim
from relay.db.tables import receipts
from relay.domain.outgoing import Outgoing
from schemas import Receipt
from schemas import topology as t
from schemas.envelope import encode_message


def claim_unpublished(conn: Connection, limit: int, older_than_seconds: float) -> list[Outgoing]:
    """Receipts marked for at least ``older_than_seconds``, claimed (``SKIP LOCKED``) and
    marked again now, so no other relay takes them while they are being published."""
    rows = claim(
        conn,
        select(
            receipts.c.id,
            receipts.c.receipt_id,
            receipts.c.agency,
            receipts.c.in_reply_to,
            receipts.c.body,
        )
        .where(
            receipts.c.publish_pending_since.is_not(None),
            receipts.c.publish_pending_since
            <= func.now() - dt.timedelta(seconds=older_than_seconds),
        )
        .order_by(receipts.c.publish_pending_since)
        .limit(limit),
        receipts,
        publish_pending_since=func.now(),
    )
    return [
        Outgoing(
            route_to=r.agency,
            message_id=r.receipt_id,
            message_type=t.TYPE_RECEIPT,
            body=encode_message(Receipt.model_validate(r.body)),
            correlation_id=r.in_reply_to,
        )
        for r in rows
    ]


def mark_published(conn: Connection, receipt_ids: Sequence[str]) -> int:
    """The broker confirmed these receipts (or the bounce schedule has them): clear the mark;
    returns how many were still marked."""
    if not receipt_ids:
        return 0
    n: int = conn.execute(
        update(receipts)
        .where(
            receipts.c.receipt_id.in_(list(receipt_ids)),
            receipts.c.publish_pending_since.is_not(None),
        )
        .values(publish_pending_since=None)
    ).rowcount
    return n
