"""Deliveries that failed or are waiting for another attempt, and destinations that are down."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Connection, func, select

from relay.db.tables import bounces, deliveries, destinations, documents
from relay.domain import states


@dataclass
class FailingDelivery:
    document_id: str
    submission_id: str
    recipient: str
    route_to: str
    state: str  # failed | retrying
    held: bool  # retrying, but held because its destination is down
    attempts: int
    last_error: str | None
    next_attempt_at: dt.datetime | None
    updated_at: dt.datetime


@dataclass
class DownDestination:
    code: str
    down_since: dt.datetime | None
    consecutive_failures: int
    last_probe_at: dt.datetime | None
    last_error: str | None
    held: int  # deliveries waiting for it


@dataclass
class FailingMessage:
    """A forwarded status or a receipt that came back: retrying, or failed for good."""

    message_id: str
    message_type: str  # status | receipt | receipts (a batch's receipts together)
    route_to: str
    correlation_id: str | None  # the submission it is about
    state: str  # failed | retrying
    attempts: int
    last_error: str | None
    next_attempt_at: dt.datetime | None
    updated_at: dt.datetime


@dataclass
class Failures:
    deliveries: list[FailingDelivery]
    destinations_down: list[DownDestination]
    messages: list[FailingMessage] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def load_failures(conn: Connection, *, limit: int = 1000) -> Failures:
    """Failed deliveries first, then retrying ones by next attempt; at most ``limit``."""
    down_rows = conn.execute(
        select(destinations).where(destinations.c.state == "down").order_by(destinations.c.code)
    ).all()
    down_codes = {r.code for r in down_rows}
    rows = conn.execute(
        select(
            documents.c.document_id,
            documents.c.message_id.label("submission_id"),
            deliveries.c.recipient,
            deliveries.c.route_to,
            deliveries.c.state,
            deliveries.c.attempts,
            deliveries.c.last_error,
            deliveries.c.next_attempt_at,
            deliveries.c.updated_at,
        )
        .join(documents, documents.c.id == deliveries.c.document_pk)
        .where(deliveries.c.state.in_([states.FAILED, states.RETRYING]))
        .order_by(
            (deliveries.c.state != states.FAILED),
            deliveries.c.next_attempt_at.nulls_last(),
            deliveries.c.id,
        )
        .limit(limit)
    ).all()
    found = [
        FailingDelivery(
            document_id=r.document_id,
            submission_id=r.submission_id,
            recipient=r.recipient,
            route_to=r.route_to,
            state=r.state,
            held=r.state == states.RETRYING and r.route_to in down_codes,
            attempts=r.attempts,
            last_error=r.last_error,
            next_attempt_at=r.next_attempt_at,
            updated_at=r.updated_at,
        )
        for r in rows
    ]
    held: dict[str, int] = {}
    if down_codes:
        held = {
            code: n
            for code, n in conn.execute(
                select(deliveries.c.route_to, func.count())
                .where(
                    deliveries.c.route_to.in_(sorted(down_codes)),
                    deliveries.c.state == states.RETRYING,
                )
                .group_by(deliveries.c.route_to)
            ).all()
        }
    down = [
        DownDestination(
            code=r.code,
            down_since=r.down_since,
            consecutive_failures=r.consecutive_failures,
            last_probe_at=r.last_probe_at,
            last_error=r.last_error,
            held=held.get(r.code, 0),
        )
        for r in down_rows
    ]
    bounced = conn.execute(
        select(bounces)
        .where(bounces.c.state.in_([states.FAILED, states.RETRYING]))
        .order_by(
            (bounces.c.state != states.FAILED), bounces.c.next_attempt_at.nulls_last(), bounces.c.id
        )
        .limit(limit)
    ).all()
    messages = [
        FailingMessage(
            message_id=r.message_id,
            message_type=r.message_type,
            route_to=r.route_to,
            correlation_id=r.correlation_id,
            state=r.state,
            attempts=r.attempts,
            last_error=r.last_error,
            next_attempt_at=r.next_attempt_at,
            updated_at=r.updated_at,
        )
        for r in bounced
    ]
    return Failures(deliveries=found, destinations_down=down, messages=messages)
