"""A delivery came back from a recipient's inbox (``lienthong.returned``): decide and record.

The decision itself is :func:`relay.retry.policy.on_return`; this module applies it in one
transaction (delivery, destination health, timeline, receipt) and tells the caller what to
publish once that transaction is committed.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import Connection, Engine, insert

from relay.config import Settings
from relay.db.tables import rejections
from relay.domain import states
from relay.domain.events import (
    DESTINATION_DOWN,
    FAILED,
    RETRY_SCHEDULED,
    RETURN_IGNORED,
    RETURNED,
)
from relay.domain.events import RETRY_HELD as HELD
from relay.domain.outgoing import Outgoing, receipt_message_id
from relay.domain.safe_text import json_safe
from relay.retry import bounces, store
from relay.retry.policy import Decision, on_return, return_reason, should_mark_down
from schemas import Receipt, ReceiptKind
from schemas import topology as t
from schemas.envelope import encode_message

log = structlog.get_logger()


@dataclass(frozen=True)
class Returned:
    """What the relay needs of a dead-lettered message."""

    message_id: str | None
    message_type: str | None
    headers: Mapping[str, Any]
    body: bytes
    correlation_id: str | None = None


@dataclass(frozen=True)
class Handled:
    decision: Decision | None  # None: not a delivery (stray message, recorded)
    to_publish: list[Outgoing]  # receipts to publish after commit


def handle_returned(
    engine: Engine, settings: Settings, msg: Returned, *, rng: random.Random | None = None
) -> Handled:
    """Record the return of ``msg`` and schedule, hold or fail its delivery (one transaction)."""
    reason = return_reason(msg.headers)
    with engine.begin() as conn:
        found = (
            store.lock_delivery(conn, msg.message_id)
            if msg.message_id and msg.message_type in (None, t.TYPE_DOCUMENT)
            else None
        )
        if found is None:
            route_to = bounces.route_of_return(msg.headers)
            if (
                msg.message_id
                and msg.message_type in (t.TYPE_STATUS, t.TYPE_RECEIPT, t.TYPE_RECEIPTS)
                and route_to is not None
            ):
                # A forwarded status or a receipt (or a batch's receipts together): retried
                # like a delivery (issue 12 item 5).
                out = bounces.from_returned(
                    msg.message_id,
                    msg.message_type,
                    msg.headers,
                    msg.body,
                    route_to,
                    msg.correlation_id,
                )
                return Handled(bounces.record(conn, settings, out, reason, rng=rng), [])
            _record_stray(conn, msg, reason)
            return Handled(None, [])
        decision, outs = apply_return(conn, settings, found, reason, rng=rng)
    return Handled(decision, outs)


def apply_return(
    conn: Connection,
    settings: Settings,
    d: store.Delivery,
    reason: str,
    *,
    rng: random.Random | None = None,
) -> tuple[Decision, list[Outgoing]]:
    """Apply one failed attempt of ``d`` inside the caller's transaction."""
    bound = log.bind(
        message_id=d.message_id,
        document_id=d.document_id,
        agency=d.route_to,
        recipient=d.recipient,
    )
    dest = store.lock_destination(conn, d.route_to)
    outcome = on_return(
        state=d.state,
        attempts=d.attempts,
        max_attempts=settings.retry_max_attempts,
        destination_down=dest.state == "down",
        base=settings.retry_base_seconds,
        cap=settings.retry_max_seconds,
        rng=rng,
    )

    def event(kind: str, description: str, detail: dict[str, Any] | None = None) -> None:
        store.add_event(
            conn,
            kind=kind,
            document_pk=d.document_pk,
            delivery_id=d.id,
            actor=d.route_to,
            description=description,
            detail=detail,
        )

    if outcome.decision is Decision.IGNORE:
        event(
            RETURN_IGNORED,
            description=f"a copy came back while the delivery was {d.state}: {reason}",
            detail={"state": d.state, "reason": reason},
        )
        bound.info("delivery.return_ignored", state=d.state)
        return outcome.decision, (
            _failed_receipt_again(conn, d) if d.state == states.FAILED else []
        )

    event(
        RETURNED,
        description=(
            f"came back while {d.route_to} is down (no attempt counted): {reason}"
            if outcome.decision is Decision.HOLD
            else f"attempt {outcome.attempts} came back: {reason}"
        ),
        detail={
            "attempt": None if outcome.decision is Decision.HOLD else outcome.attempts,
            "reason": reason,
        },
    )
    store.note_destination_failure(conn, d.route_to, reason)
    outs: list[Outgoing] = []
    if outcome.decision is Decision.HOLD:
        store.hold(conn, d.id, error=reason)
        event(
            HELD,
            description=f"destination {d.route_to} is down: held until it comes back",
        )
        bound.info("delivery.retry_held")
    elif outcome.decision is Decision.FAIL:
        outs.append(
            fail_delivery(
                conn,
                d,
                attempts=outcome.attempts,
                error=reason,
                description=f"failed after {outcome.attempts} attempts: {reason}",
                told=f"{d.recipient} could not be reached: {reason}",
            )
        )
    else:
        assert outcome.delay is not None
        at = store.schedule_retry(
            conn, d.id, attempts=outcome.attempts, error=reason, delay=outcome.delay
        )
        event(
            RETRY_SCHEDULED,
            description=f"attempt {outcome.attempts + 1} in {outcome.delay:.2f} s",
            detail={
                "attempt": outcome.attempts + 1,
                "delay_seconds": outcome.delay,
                "next_attempt_at": at.isoformat(),
            },
        )
        bound.info("delivery.retry_scheduled", attempts=outcome.attempts, delay=outcome.delay)
    if dest.state == "up":
        failing = store.failing_deliveries(
            conn, d.route_to, window_seconds=settings.destination_window_seconds
        )
        if should_mark_down(failing_deliveries=failing, down_after=settings.destination_down_after):
            held = store.mark_down(conn, d.route_to)
            store.add_event(
                conn,
                kind=DESTINATION_DOWN,
                actor=d.route_to,
                description=(
                    f"destination {d.route_to} is down: {failing} different deliveries came "
                    f"back ({reason}); {held} retries held, probing every "
                    f"{settings.destination_probe_seconds:g} s"
                ),
                detail={
                    "destination": d.route_to,
                    "failing_deliveries": failing,
                    "held": held,
                    "reason": reason,
                },
            )
            bound.warning("destination.down", failing_deliveries=failing, held=held)
    return outcome.decision, outs


def fail_delivery(
    conn: Connection,
    d: store.Delivery,
    *,
    attempts: int,
    error: str,
    description: str,
    told: str,
    detail: Mapping[str, Any] | None = None,
) -> Outgoing:
    """Mark ``d`` ``failed`` for good inside the caller's transaction: ``error`` is what the
    operators' failures list shows, ``description`` the timeline's ``failed`` event, ``told``
    the reason in the sender's ``delivery_failed`` receipt, which is returned to be published
    once the transaction is committed. The one way a delivery fails (a last return here, a
    chunked transfer that never finished in :mod:`relay.blobs.expiry`)."""
    store.mark_failed(conn, d.id, attempts=attempts, error=error)
    store.add_event(
        conn,
        kind=FAILED,
        document_pk=d.document_pk,
        delivery_id=d.id,
        actor=d.route_to,
        description=description,
        detail={"attempts": attempts, "reason": error, **(detail or {})},
    )
    log.warning(
        "delivery.failed",
        message_id=d.message_id,
        document_id=d.document_id,
        agency=d.route_to,
        recipient=d.recipient,
        attempts=attempts,
        reason=error,
    )
    return _failed_receipt(conn, d, told)


def _failed_receipt(conn: Connection, d: store.Delivery, reason: str) -> Outgoing:
    # A delivery can fail again after a resend: each failure gets a receipt id of its own, so
    # the sender's adapter does not drop the second one as a copy of the first.
    earlier = store.count_events(conn, d.id, FAILED) - 1
    key = d.recipient if earlier <= 0 else f"{d.recipient}#{earlier + 1}"
    receipt = Receipt(
        receipt_id=uuid.UUID(
            receipt_message_id(d.submission_id, ReceiptKind.DELIVERY_FAILED, key, by=d.submitted_by)
        ),
        kind=ReceiptKind.DELIVERY_FAILED,
        in_reply_to=d.submission_id,
        message_type="document",
        document_id=d.document_id,
        sender=d.sender,
        recipient=d.recipient,
        reason=reason,
    )
    body = receipt.model_dump(mode="json", by_alias=True)
    store.store_receipt(
        conn,
        receipt_id=str(receipt.receipt_id),
        agency=d.submitted_by,
        in_reply_to=d.submission_id,
        kind=ReceiptKind.DELIVERY_FAILED,
        body=body,
        publish_pending=True,  # until the broker confirms it (relay.retry.outbox)
    )
    return _receipt_out(
        d.submitted_by, str(receipt.receipt_id), d.submission_id, encode_message(receipt)
    )


def _failed_receipt_again(conn: Connection, d: store.Delivery) -> list[Outgoing]:
    """After a crash between commit and publish the receipt is published again (same id)."""
    found = store.latest_receipt(
        conn, in_reply_to=d.submission_id, kind=ReceiptKind.DELIVERY_FAILED, recipient=d.recipient
    )
    if found is None:
        return []
    receipt_id, agency, body = found
    payload = Receipt.model_validate(body)
    return [_receipt_out(agency, receipt_id, d.submission_id, encode_message(payload))]


def _receipt_out(agency: str, receipt_id: str, submission_id: str, body: bytes) -> Outgoing:
    return Outgoing(
        route_to=agency,
        message_id=receipt_id,
        message_type=t.TYPE_RECEIPT,
        body=body,
        correlation_id=submission_id,
    )


def _record_stray(conn: Connection, msg: Returned, reason: str) -> None:
    """A returned message that is no document delivery: kept with the reason, not retried."""
    what = msg.message_type or "message"
    if msg.message_type in (None, t.TYPE_DOCUMENT):
        why = f"returned {what} {msg.message_id!r} matches no delivery: {reason}"
    else:
        why = f"returned {what} {msg.message_id!r} is not retried: {reason}"
    conn.execute(
        insert(rejections).values(
            message_id=msg.message_id,
            queue=t.RETURNED_QUEUE,
            user_id=None,
            message_type=msg.message_type,
            reason=why,
            properties={"headers": json_safe(dict(msg.headers))},
            body=msg.body,
        )
    )
    log.warning(
        "returned.stray", message_id=msg.message_id, message_type=msg.message_type, reason=reason
    )


PublishFn = Callable[[Outgoing], None]
