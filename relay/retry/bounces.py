"""Statuses and receipts that came back: retried like deliveries (issue 12 items 5 and 6).

A forwarded status or a receipt has no delivery row. When an adapter cannot store one (it is
dead-lettered to ``lienthong.returned``), when it expires in an inbox, or when the relay finds
no inbox for it (unroutable), it is kept in ``bounces`` with the same retry policy as a
delivery (:func:`relay.retry.policy.on_return`: full-jitter backoff, ``retry_max_attempts``).
The retry schedule publishes it again with its own message id, so an adapter that did store an
earlier copy drops it; after the last attempt it is ``failed`` and ``lienthong failures`` shows
it. Every function runs inside the caller's transaction.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import Connection, func, select, update
from sqlalchemy.dialects.postgresql import insert

from relay.config import Settings
from relay.db.lease import claim
from relay.db.tables import bounces
from relay.domain import states
from relay.domain.outgoing import Outgoing
from relay.domain.safe_text import json_safe
from relay.retry.policy import Decision, on_return
from schemas import topology as t

log = structlog.get_logger()

RETRYING = states.RETRYING
QUEUED = states.QUEUED
FAILED = states.FAILED


@dataclass(frozen=True)
class Bounce:
    id: int
    outgoing: Outgoing
    attempts: int


def route_of_return(headers: Mapping[str, Any]) -> str | None:
    """The agency a dead-lettered message was for: its routing key (``x-death``), else the
    inbox it died in."""
    deaths = headers.get("x-death")
    if isinstance(deaths, Sequence) and deaths and isinstance(deaths[0], Mapping):
        keys = deaths[0].get("routing-keys")
        if isinstance(keys, Sequence) and keys and isinstance(keys[0], str | bytes):
            key = keys[0]
            return key.decode("utf-8", "replace") if isinstance(key, bytes) else key
    queue = headers.get("x-first-death-queue")
    if isinstance(queue, bytes):
        queue = queue.decode("utf-8", "replace")
    if isinstance(queue, str) and queue.startswith("agency.") and queue.endswith(".inbox"):
        return queue.removeprefix("agency.").removesuffix(".inbox")
    return None


def record(
    conn: Connection,
    settings: Settings,
    out: Outgoing,
    reason: str,
    *,
    rng: random.Random | None = None,
) -> Decision:
    """One failed attempt of ``out``: schedule the next one, or fail it after the last."""
    row = conn.execute(
        select(bounces.c.id, bounces.c.state, bounces.c.attempts)
        .where(bounces.c.message_id == out.message_id)
        .with_for_update()
    ).first()
    if row is not None and row.state == FAILED:
        return Decision.IGNORE
    state_now = QUEUED if row is None else row.state
    outcome = on_return(
        state=QUEUED if state_now == RETRYING else state_now,
        attempts=0 if row is None else row.attempts,
        max_attempts=settings.retry_max_attempts,
        destination_down=False,
        base=settings.retry_base_seconds,
        cap=settings.retry_max_seconds,
        rng=rng,
    )
    failed = outcome.decision is Decision.FAIL
    values: dict[str, Any] = {
        "state": FAILED if failed else RETRYING,
        "attempts": outcome.attempts,
        "last_error": reason,
        "next_attempt_at": None
        if failed
        else func.now() + dt.timedelta(seconds=outcome.delay or 0.0),
        "updated_at": func.now(),
    }
    if row is None:
        conn.execute(
            insert(bounces)
            .values(
                message_id=out.message_id,
                message_type=out.message_type,
                route_to=out.route_to,
                correlation_id=out.correlation_id,
                headers=json_safe(dict(out.headers)) or None,
                body=out.body,
                **values,
            )
            .on_conflict_do_nothing(index_elements=[bounces.c.message_id])
        )
    else:
        conn.execute(update(bounces).where(bounces.c.id == row.id).values(**values))
    bound = log.bind(message_id=out.message_id, agency=out.route_to, type=out.message_type)
    if failed:
        bound.warning("bounce.failed", attempts=outcome.attempts, reason=reason)
    else:
        bound.info("bounce.retry_scheduled", attempts=outcome.attempts, delay=outcome.delay)
    return outcome.decision


def claim_due(conn: Connection, limit: int, lease_seconds: float) -> list[Bounce]:
    """Bounced messages whose next attempt is due, claimed (``SKIP LOCKED``) and leased."""
    rows = claim(
        conn,
        select(bounces)
        .where(bounces.c.state == RETRYING, bounces.c.next_attempt_at <= func.now())
        .order_by(bounces.c.next_attempt_at)
        .limit(limit),
        bounces,
        next_attempt_at=func.now() + dt.timedelta(seconds=lease_seconds),
    )
    return [
        Bounce(
            id=r.id,
            attempts=r.attempts,
            outgoing=Outgoing(
                route_to=r.route_to,
                message_id=r.message_id,
                message_type=r.message_type,
                body=bytes(r.body),
                headers={str(k): str(v) for k, v in (r.headers or {}).items()},
                correlation_id=r.correlation_id,
            ),
        )
        for r in rows
    ]


def mark_sent(conn: Connection, bounce_id: int) -> None:
    """Published and confirmed: in the inbox again (``queued``); a new return starts over."""
    conn.execute(
        update(bounces)
        .where(bounces.c.id == bounce_id, bounces.c.state == RETRYING)
        .values(state=QUEUED, next_attempt_at=None, updated_at=func.now())
    )


def from_returned(
    message_id: str,
    message_type: str,
    headers: Mapping[str, Any],
    body: bytes,
    route_to: str,
    correlation_id: str | None,
) -> Outgoing:
    """The message to publish again, as the relay first published it."""
    keep = {
        k: v.decode("utf-8", "replace") if isinstance(v, bytes) else v
        for k, v in headers.items()
        if isinstance(k, str) and k.startswith("x-lienthong-") and isinstance(v, str | bytes)
    }
    return Outgoing(
        route_to=route_to,
        message_id=message_id,
        message_type=message_type,
        body=body,
        headers=keep,
        correlation_id=correlation_id or keep.get(t.HEADER_SUBMISSION_ID),
    )
