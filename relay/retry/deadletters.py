"""Submissions the relay failed on too often: from ``lienthong.failed-submissions`` to a
``rejected`` receipt the sender is told about (issue 12, item 9).

Every outbox has an explicit delivery limit (policy ``lienthong-outbox``) and dead-letters,
at least once, to ``lienthong.failed-submissions``: a submission that keeps failing the relay
(RabbitMQ 4.x would otherwise drop it after 20 deliveries) lands there. This worker records
each one in ``rejections`` and sends its owner a ``rejected`` receipt, in one transaction and
then a confirmed publish, then acks. What it cannot handle either goes, after the queue's own
delivery limit, to ``lienthong.parked`` for an operator.

The relay's first worker process runs :class:`FailedSubmissionsWorker` in a thread beside the
retry worker (``relay/worker/main.py``).
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pika
import pika.exceptions
import structlog
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import Basic, BasicProperties
from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import SQLAlchemyError

from relay.config import Settings
from relay.db.tables import documents, receipts, rejections
from relay.domain.outgoing import Outgoing, receipt_message_id
from relay.domain.safe_text import json_safe, optional_text
from relay.errors import LienthongError
from relay.retry import amqp
from schemas import Receipt, ReceiptKind
from schemas import topology as t
from schemas.envelope import encode_message

log = structlog.get_logger()

PREFETCH = 20
RECONNECT_FIRST, RECONNECT_MAX = 0.5, 15.0


@dataclass(frozen=True)
class DeadSubmission:
    """What the relay needs of a dead-lettered submission."""

    message_id: str | bytes | None
    message_type: str | bytes | None
    user_id: str | None
    headers: Mapping[str, Any]
    body: bytes


def death(headers: Mapping[str, Any]) -> tuple[str | None, str, int]:
    """(outbox it died in, why, how many times it was delivered) from RabbitMQ's headers."""
    deaths = headers.get("x-death") or []
    first = deaths[-1] if deaths else {}
    queue = headers.get("x-first-death-queue") or first.get("queue")
    reason = headers.get("x-first-death-reason") or first.get("reason") or "unknown"
    count = headers.get("x-delivery-count")
    return (
        optional_text(queue),
        optional_text(reason) or "unknown",
        int(count) if isinstance(count, int) else 0,
    )


def describe(reason: str) -> str:
    if reason == "delivery_limit":
        return "the hub failed to process it too many times"
    if reason == "rejected":
        return "the hub could not process it"
    return f"the hub set it aside ({reason})"


def handle_dead_submission(engine: Engine, msg: DeadSubmission) -> Outgoing | None:
    """Record ``msg`` and build the ``rejected`` receipt for its sender (None: nobody to tell,
    or it was processed after all). Publishing it again after a crash gives the same receipt."""
    outbox, reason, _ = death(msg.headers)
    owner = t.agency_of_outbox(outbox) if outbox else None
    mid = optional_text(msg.message_id) or ""
    publisher = optional_text(msg.user_id)  # validated by the broker at publish time
    if owner is not None and publisher != owner:
        # The death headers are the publisher's to write too: only the agency the broker
        # authenticated, when it owns that outbox, is ever told (nobody else, issue 12 item 2).
        log.warning("deadletter.owner_mismatch", message_id=mid, queue=outbox, user_id=publisher)
        owner = None
    message_type = optional_text(msg.message_type)
    why = (
        f"submission {mid!r} was set aside: {describe(reason)}. Nothing was delivered; "
        "check it and send it again, or ask the hub operator"
    )
    with engine.begin() as conn:
        if owner is not None and mid:
            recorded = conn.execute(
                select(documents.c.id).where(
                    documents.c.message_id == mid, documents.c.submitted_by == owner
                )
            ).first()
            if recorded is not None:  # it went through after all; its receipts were sent
                log.warning("deadletter.already_processed", message_id=mid, agency=owner)
                return None
        receipt_id = (
            receipt_message_id(mid, ReceiptKind.REJECTED.value, by=owner)
            if mid and owner
            else str(uuid.uuid4())
        )
        earlier = conn.execute(
            select(receipts.c.agency, receipts.c.body).where(receipts.c.receipt_id == receipt_id)
        ).first()
        if earlier is not None:  # handled before a crash: the same receipt again
            body = encode_message(Receipt.model_validate(earlier.body))
            return _out(earlier.agency, receipt_id, mid, body)
        receipt = Receipt(
            receipt_id=uuid.UUID(receipt_id),
            kind=ReceiptKind.REJECTED,
            in_reply_to=mid,
            message_type=message_type if message_type in (t.TYPE_DOCUMENT, t.TYPE_STATUS) else None,
            sender=owner,
            reason=why,
        )
        body_json = receipt.model_dump(mode="json", by_alias=True)
        conn.execute(
            insert(rejections).values(
                message_id=mid or None,
                queue=outbox or t.FAILED_SUBMISSIONS_QUEUE,
                user_id=optional_text(msg.user_id),
                message_type=message_type,
                reason=f"{why} (dead-lettered: {reason})",
                properties={"headers": json_safe(dict(msg.headers))},
                body=msg.body,
                receipt=body_json if owner else None,
            )
        )
        if owner is None:
            log.warning("deadletter.no_owner", message_id=mid, queue=outbox, reason=reason)
            return None
        conn.execute(
            insert(receipts).values(
                receipt_id=receipt_id,
                agency=owner,
                in_reply_to=mid,
                kind=ReceiptKind.REJECTED.value,
                body=body_json,
            )
        )
    log.warning("deadletter.rejected", message_id=mid, agency=owner, reason=reason)
    return _out(owner, receipt_id, mid, encode_message(receipt))


def _out(agency: str, receipt_id: str, submission_id: str, body: bytes) -> Outgoing:
    return Outgoing(
        route_to=agency,
        message_id=receipt_id,
        message_type=t.TYPE_RECEIPT,
        body=body,
        correlation_id=submission_id or None,
    )


class FailedSubmissionsWorker:
    """Consumes ``lienthong.failed-submissions``; one thread, one connection, one engine."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        """``engine``: its own (built by the composition root, which disposes of it)."""
        self.settings = settings
        self._engine: Engine | None = engine
        self._publish_channel: BlockingChannel | None = None

    def run(self, stop: threading.Event) -> None:
        """Work until ``stop`` is set; survives broker and database outages."""
        delay = RECONNECT_FIRST
        try:
            while not stop.is_set():
                try:
                    self._session(stop)
                    delay = RECONNECT_FIRST
                except (LienthongError, SQLAlchemyError, pika.exceptions.AMQPError) as e:
                    log.warning("deadletter.worker_interrupted", error=str(e), retry_in=delay)
                except Exception:  # the loop boundary: log, wait, start again
                    log.exception("deadletter.worker_crashed", retry_in=delay)
                stop.wait(delay)
                delay = min(delay * 2, RECONNECT_MAX)
        finally:
            log.debug("deadletter.worker_stopped")

    def _session(self, stop: threading.Event) -> None:
        conn = amqp.connect(self.settings.amqp_url, name="lienthong relay failed submissions")
        try:
            self._publish_channel = amqp.open_confirm_channel(conn)
            consume = conn.channel()
            consume.basic_qos(prefetch_count=PREFETCH)
            consume.basic_consume(t.FAILED_SUBMISSIONS_QUEUE, self._on_message)
            log.info("deadletter.worker_started", queue=t.FAILED_SUBMISSIONS_QUEUE)
            while not stop.is_set():
                conn.process_data_events(time_limit=0.2)
        finally:
            self._publish_channel = None
            if conn.is_open:
                with contextlib.suppress(pika.exceptions.AMQPError):
                    conn.close()

    def _on_message(
        self, channel: BlockingChannel, method: Basic.Deliver, props: BasicProperties, body: bytes
    ) -> None:
        assert self._engine is not None and self._publish_channel is not None
        msg = DeadSubmission(
            message_id=props.message_id,
            message_type=props.type,
            user_id=props.user_id,
            headers=dict(props.headers or {}),
            body=body,
        )
        # Errors propagate: the connection closes, the message is not acked and comes back
        # (and after the queue's delivery limit it is parked, not lost).
        out = handle_dead_submission(self._engine, msg)
        if out is not None:
            amqp.publish(self._publish_channel, out)
        channel.basic_ack(method.delivery_tag)
