"""The relay's deadline job: fill in due times, tell each sender once about an overdue delivery.

It runs in the relay's periodic-jobs thread (:mod:`relay.periodic`). Each pass, in one short
transaction per step:

1. deliveries without due times get them (:func:`relay.deadlines.store.fill_due_times`);
2. overdue deliveries whose sender has not been told are locked (``SKIP LOCKED``), an
   ``overdue`` receipt is stored for each with a deterministic id, an ``overdue`` event is added
   to the delivery's timeline, the receipts are published to the senders' inboxes and confirmed,
   and only then is the transaction committed. A crash in between publishes the same receipt
   ids again on the next pass, which the sender's adapter recognises: one notice per delivery.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import structlog
from sqlalchemy import Connection, Engine, insert
from sqlalchemy.dialects.postgresql import insert as pg_insert

from relay.config import Settings
from relay.db.tables import events, receipts
from relay.deadlines.calendar import VIETNAM, WorkCalendar, describe_lateness
from relay.deadlines.store import (
    ACK,
    Overdue,
    fill_all_due_times,
    mark_notified,
    overdue_deliveries,
)
from relay.domain import events as ev
from relay.domain.outgoing import Outgoing, receipt_uuid
from schemas import Receipt, ReceiptKind
from schemas import topology as t
from schemas.envelope import encode_message
from schemas.status_codes import describe_status

log = structlog.get_logger()

#: The timeline event added to a delivery when its sender is told it is overdue.
OVERDUE_EVENT: Final = ev.OVERDUE
#: Overdue notices sent per transaction.
NOTICE_BATCH: Final = 200

#: Publishes receipts and returns once the broker confirmed them all (raises otherwise).
Publisher = Callable[[Sequence[Outgoing]], None]


def calendar_from(settings: Settings) -> WorkCalendar:
    return WorkCalendar(
        extra_holidays=settings.extra_holiday_dates,
        makeup_working_days=settings.makeup_working_dates,
        workday_end=settings.workday_end,
    )


def overdue_reason(o: Overdue, now: dt.datetime) -> str:
    """What the sender reads: who is late with what, since when."""
    what = f"{o.status_code} {describe_status(o.status_code)}"
    rule = "urgent document" if o.urgent else "Decree 30/2020: by the end of the next working day"
    return (
        f"{o.recipient} has not sent {what} for document {o.document_id!r}: it was due at "
        f"{o.due_at.astimezone(VIETNAM).isoformat(timespec='seconds')} ({rule}); "
        f"{describe_lateness(o.late(now))} late"
    )


def overdue_receipt(o: Overdue, now: dt.datetime) -> Receipt:
    return Receipt(
        receipt_id=receipt_uuid(
            o.submission_id, ReceiptKind.OVERDUE, o.recipient, by=o.submitted_by
        ),
        kind=ReceiptKind.OVERDUE,
        in_reply_to=o.submission_id,
        message_type="document",
        document_id=o.document_id,
        sender=o.sender,
        recipient=o.recipient,
        status_code=o.status_code,
        due_at=o.due_at,
        reason=overdue_reason(o, now),
        at=now,
    )


@dataclass
class PassResult:
    dated: int = 0
    notified: int = 0


class DeadlineJob:
    """One pass at a time (:meth:`run_once`); the caller decides how often."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        publish: Publisher,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.publish = publish
        self.clock = clock
        self.calendar = calendar_from(settings)

    def run_once(self) -> PassResult:
        result = PassResult()
        result.dated = fill_all_due_times(
            self.engine, self.calendar, self.settings.urgent_deadline_seconds
        )
        while True:
            with self.engine.begin() as conn:
                n = self._notify(conn)
            result.notified += n
            if n < NOTICE_BATCH:
                break
        if result.dated or result.notified:
            log.info("deadlines.pass", dated=result.dated, notified=result.notified)
        return result

    def _notify(self, conn: Connection) -> int:
        now = self.clock()
        late = overdue_deliveries(conn, now, only_unnotified=True, limit=NOTICE_BATCH, lock=True)
        if not late:
            return 0
        outs: list[Outgoing] = []
        receipt_rows = []
        event_rows = []
        for o in late:
            receipt = overdue_receipt(o, now)
            body = encode_message(receipt)
            receipt_rows.append(
                {
                    "receipt_id": str(receipt.receipt_id),
                    "agency": o.submitted_by,
                    "in_reply_to": o.submission_id,
                    "kind": ReceiptKind.OVERDUE.value,
                    "body": receipt.model_dump(mode="json", by_alias=True),
                }
            )
            event_rows.append(
                {
                    "document_pk": o.document_pk,
                    "delivery_id": o.delivery_id,
                    "kind": OVERDUE_EVENT,
                    "status_code": o.status_code,
                    "description": receipt.reason,
                    "actor": "relay",
                    "detail": {
                        "due_at": o.due_at.isoformat(),
                        "urgent": o.urgent,
                        "late_seconds": round(o.late(now).total_seconds()),
                    },
                }
            )
            outs.append(
                Outgoing(
                    route_to=o.submitted_by,
                    message_id=str(receipt.receipt_id),
                    message_type=t.TYPE_RECEIPT,
                    body=body,
                    correlation_id=o.submission_id,
                )
            )
            log.warning(
                "delivery.overdue",
                document_id=o.document_id,
                recipient=o.recipient,
                status_code=o.status_code,
                late_seconds=round(o.late(now).total_seconds()),
                urgent=o.urgent,
                ack_awaited=o.status_code == ACK,
            )
        conn.execute(pg_insert(receipts).values(receipt_rows).on_conflict_do_nothing())
        conn.execute(insert(events).values(event_rows))
        mark_notified(conn, [o.delivery_id for o in late], now)
        # Published before the commit: if publishing fails, nothing is marked and the next pass
        # tries again with the same receipt ids.
        self.publish(outs)
        return len(late)
