"""The whole timeline of a document: every submission, every recipient, every event."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Connection, select

from relay.db.tables import deliveries, documents, events, receipts
from relay.domain import events as ev
from relay.errors import NotFound
from relay.federation.store import hub_neighbours
from schemas import BusinessType, ReceiptKind, RecipientOutcome, describe_status


@dataclass
class Event:
    at: dt.datetime
    kind: str
    status_code: str | None = None
    status: str | None = None  # the Vietnamese description of status_code
    staff: str | None = None
    actor: str | None = None
    description: str | None = None
    detail: dict[str, Any] | None = None


@dataclass
class RecipientTimeline:
    recipient: str
    route_to: str
    message_id: str
    state: str
    attempts: int
    last_error: str | None
    next_attempt_at: dt.datetime | None
    events: list[Event] = field(default_factory=list)


@dataclass
class Submission:
    message_id: str
    business_type: int
    business: str
    sender: str
    submitted_by: str
    subject: str | None
    received_at: dt.datetime
    events: list[Event] = field(default_factory=list)  # about the submission as a whole
    receipts: list[dict[str, Any]] = field(default_factory=list)
    recipients: list[RecipientTimeline] = field(default_factory=list)


@dataclass
class Trace:
    document_id: str
    submissions: list[Submission]
    #: agency codes that stand for another hub, and what they are (relay/federation)
    hubs: dict[str, dict[str, str]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _business(code: int) -> str:
    try:
        return BusinessType(code).description
    except ValueError:
        return f"Loại không xác định ({code})"


#: What an event says when its row has no description of its own.
_DEFAULT_DESCRIPTIONS = {
    ev.QUEUED: "attempt 1 published to the recipient's inbox",
}


def _event(row: Any) -> Event:
    code = row.status_code
    return Event(
        at=row.at,
        kind=row.kind,
        status_code=code,
        status=describe_status(code) if code else None,
        staff=row.staff,
        actor=row.actor,
        description=row.description or _DEFAULT_DESCRIPTIONS.get(row.kind),
        detail=row.detail,
    )


def _submitted(doc: Any, receipt: dict[str, Any] | None) -> Event:
    """The first event of a submission, from its ``documents`` row and its accepted receipt
    (the relay writes no event row for it: the row itself says when and from whom)."""
    results = (receipt or {}).get("recipients") or []
    return Event(
        at=doc.received_at,
        kind=ev.SUBMITTED,
        actor=doc.sender,
        description=_business(doc.business_type),
        detail={
            "message_id": doc.message_id,
            "submitted_by": doc.submitted_by,
            "business_type": doc.business_type,
            "not_routed": [
                {"code": r.get("code"), "outcome": r.get("outcome"), "reason": r.get("reason")}
                for r in results
                if r.get("outcome") != RecipientOutcome.QUEUED.value
            ],
        },
    )


def load_trace(conn: Connection, document_id: str) -> Trace:
    """Every submission carrying ``document_id`` (a revoke reuses it), oldest first."""
    docs = conn.execute(
        select(documents).where(documents.c.document_id == document_id).order_by(documents.c.id)
    ).all()
    if not docs:
        raise NotFound(f"document_id: no document {document_id!r} is known to the relay")
    pks = [d.id for d in docs]
    subs: dict[int, Submission] = {}
    for d in docs:
        subs[d.id] = Submission(
            message_id=d.message_id,
            business_type=d.business_type,
            business=_business(d.business_type),
            sender=d.sender,
            submitted_by=d.submitted_by,
            subject=d.subject,
            received_at=d.received_at,
        )
    by_delivery: dict[int, RecipientTimeline] = {}
    for r in conn.execute(
        select(deliveries).where(deliveries.c.document_pk.in_(pks)).order_by(deliveries.c.id)
    ):
        timeline = RecipientTimeline(
            recipient=r.recipient,
            route_to=r.route_to,
            message_id=r.message_id,
            state=r.state,
            attempts=r.attempts,
            last_error=r.last_error,
            next_attempt_at=r.next_attempt_at,
        )
        by_delivery[r.id] = timeline
        subs[r.document_pk].recipients.append(timeline)
    for e in conn.execute(
        select(events).where(events.c.document_pk.in_(pks)).order_by(events.c.at, events.c.id)
    ):
        if e.delivery_id is not None and e.delivery_id in by_delivery:
            by_delivery[e.delivery_id].events.append(_event(e))
        elif e.document_pk in subs:
            subs[e.document_pk].events.append(_event(e))
    by_message = {s.message_id: s for s in subs.values()}
    accepted: dict[str, dict[str, Any]] = {}
    for rc in conn.execute(
        select(receipts)
        .where(receipts.c.in_reply_to.in_(list(by_message)))
        .order_by(receipts.c.at, receipts.c.id)
    ):
        if rc.kind == ReceiptKind.ACCEPTED.value and rc.in_reply_to not in accepted:
            accepted[rc.in_reply_to] = rc.body or {}
        by_message[rc.in_reply_to].receipts.append(
            {
                "at": rc.at,
                "kind": rc.kind,
                "agency": rc.agency,
                "receipt_id": rc.receipt_id,
                "recipient": (rc.body or {}).get("recipient"),
                "reason": (rc.body or {}).get("reason"),
            }
        )
    for d in docs:
        subs[d.id].events.insert(0, _submitted(d, accepted.get(d.message_id)))
    return Trace(
        document_id=document_id,
        submissions=[subs[pk] for pk in pks],
        hubs=hub_neighbours(conn),
    )
