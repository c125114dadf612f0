"""What the console's document pages read: lists with search, one document per recipient, and
the version a live page compares to know whether anything changed."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, exists, func, or_, select

from relay.console.deadlines import overdue
from relay.console.scope import Scope
from relay.db.tables import agencies, deliveries, documents, events
from relay.domain import events as ev
from relay.errors import NotFound
from relay.queries.trace import Event, load_trace
from schemas import describe_status

#: Times are shown, and dates searched, in Vietnam's time.
VIETNAM: Final = ZoneInfo("Asia/Ho_Chi_Minh")
PAGE_SIZE: Final = 50

#: The steps of a recipient's timeline, in order: sent to its inbox, then the progress codes.
QUEUED_STEP: Final = ev.QUEUED
PROGRESS_CODES: Final = ("01", "03", "04", "05", "06")
DIRECTIONS: Final = ("all", "sent", "received")


@dataclass(frozen=True)
class Headers:
    """The header fields a page shows: columns of ``documents`` the relay writes at intake
    (``relay/document_headers.py``)."""

    code_number: str | None = None
    code_notation: str | None = None
    priority: int | None = None
    promulgation_date: dt.date | None = None
    due_date: dt.date | None = None


HEADER_COLUMNS: Final = (
    documents.c.code_number,
    documents.c.code_notation,
    documents.c.priority,
    documents.c.promulgation_date,
    documents.c.due_date,
)


def _headers(row: Any) -> Headers:
    return Headers(
        code_number=row.code_number,
        code_notation=row.code_notation,
        priority=row.priority,
        promulgation_date=row.promulgation_date,
        due_date=row.due_date,
    )


@dataclass(frozen=True)
class Filters:
    direction: str = "all"
    document_id: str = ""
    number: str = ""
    subject: str = ""
    counterpart: str = ""
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    state: str = ""
    page: int = 1


@dataclass
class DocumentRow:
    document_id: str
    sender: str
    sender_name: str | None
    subject: str | None
    received_at: dt.datetime
    business_type: int
    headers: Headers
    sent_by_view: bool
    states: dict[str, int] = field(default_factory=dict)  # of the recipients the user sees


def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=VIETNAM)


def list_documents(conn: Connection, scope: Scope, f: Filters) -> list[DocumentRow]:
    """One row per submission in ``scope`` matching ``f``, newest first, a page at a time."""
    query = select(
        documents.c.id,
        documents.c.document_id,
        documents.c.sender,
        agencies.c.name.label("sender_name"),
        documents.c.subject,
        documents.c.received_at,
        documents.c.business_type,
        *HEADER_COLUMNS,
    ).outerjoin(agencies, agencies.c.code == documents.c.sender)
    if f.direction == "sent":
        query = query.where(scope.sent())
    elif f.direction == "received":
        query = query.where(scope.received())
    else:
        query = query.where(scope.visible())
    if f.document_id:
        query = query.where(documents.c.document_id.icontains(f.document_id, autoescape=True))
    if f.number:
        number = func.concat(documents.c.code_number, "/", documents.c.code_notation)
        query = query.where(
            or_(
                number.icontains(f.number, autoescape=True),
                documents.c.document_id.icontains(f.number, autoescape=True),
            )
        )
    if f.subject:
        query = query.where(documents.c.subject.icontains(f.subject, autoescape=True))
    if f.counterpart:
        named = select(agencies.c.code).where(
            or_(
                agencies.c.code.icontains(f.counterpart, autoescape=True),
                agencies.c.name.icontains(f.counterpart, autoescape=True),
            )
        )
        query = query.where(
            or_(
                documents.c.sender.in_(named),
                exists(
                    select(deliveries.c.id).where(
                        deliveries.c.document_pk == documents.c.id,
                        deliveries.c.recipient.in_(named),
                    )
                ),
            )
        )
    if f.date_from:
        query = query.where(documents.c.received_at >= _day_start(f.date_from))
    if f.date_to:
        query = query.where(documents.c.received_at < _day_start(f.date_to + dt.timedelta(days=1)))
    if f.state:
        in_view = (
            deliveries.c.recipient.in_(sorted(scope.codes))
            if not scope.everything
            else deliveries.c.id.isnot(None)
        )
        query = query.where(
            exists(
                select(deliveries.c.id).where(
                    deliveries.c.document_pk == documents.c.id,
                    deliveries.c.state == f.state,
                    or_(in_view, scope.sent()),
                )
            )
        )
    page = max(1, f.page)
    rows = conn.execute(
        query.order_by(documents.c.received_at.desc(), documents.c.id.desc())
        .limit(PAGE_SIZE)
        .offset((page - 1) * PAGE_SIZE)
    ).all()
    found: dict[int, DocumentRow] = {}
    for r in rows:
        found[r.id] = DocumentRow(
            document_id=r.document_id,
            sender=r.sender,
            sender_name=r.sender_name,
            subject=r.subject,
            received_at=r.received_at,
            business_type=r.business_type,
            headers=_headers(r),
            sent_by_view=scope.covers(r.sender),
        )
    if found:
        for pk, recipient, state in conn.execute(
            select(deliveries.c.document_pk, deliveries.c.recipient, deliveries.c.state).where(
                deliveries.c.document_pk.in_(list(found))
            )
        ):
            row = found[pk]
            if row.sent_by_view or scope.covers(recipient):
                row.states[state] = row.states.get(state, 0) + 1
    return list(found.values())


@dataclass
class Step:
    code: str  # "queued" or a status code
    name: str
    at: dt.datetime | None


@dataclass
class RecipientView:
    recipient: str
    recipient_name: str | None
    route_to: str
    state: str
    attempts: int
    last_error: str | None
    latest_code: str | None
    latest_name: str | None
    latest_at: dt.datetime | None
    steps: list[Step]
    events: list[Event]
    overdue: bool


@dataclass
class SubmissionView:
    message_id: str
    business: str
    business_type: int
    sender: str
    sender_name: str | None
    submitted_by: str
    subject: str | None
    received_at: dt.datetime
    headers: Headers
    events: list[Event]
    recipients: list[RecipientView]


@dataclass
class DocumentView:
    document_id: str
    submissions: list[SubmissionView]


def _steps(timeline: list[Event], queued_name: str) -> list[Step]:
    first: dict[str, dt.datetime] = {}
    for e in timeline:
        key = e.status_code if e.status_code else (QUEUED_STEP if e.kind == ev.QUEUED else None)
        if key is not None and key not in first:
            first[key] = e.at
    steps = [Step(QUEUED_STEP, queued_name, first.get(QUEUED_STEP))]
    if "02" in first:
        progressed = [c for c in PROGRESS_CODES if c in first]
        steps += [Step(c, describe_status(c), first[c]) for c in progressed]
        steps.append(Step("02", describe_status("02"), first["02"]))
        return steps
    steps += [Step(c, describe_status(c), first.get(c)) for c in PROGRESS_CODES]
    return steps


def load_document(
    conn: Connection, scope: Scope, document_id: str, *, now: dt.datetime, queued_name: str
) -> DocumentView:
    """The submissions of ``document_id`` the user may see, with the recipients' rows it may
    see; NotFound when there is none (whether it does not exist or is outside the view)."""
    try:
        trace = load_trace(conn, document_id)
    except NotFound:
        raise NotFound(document_id) from None
    headers = {
        r.message_id: _headers(r)
        for r in conn.execute(
            select(documents.c.message_id, *HEADER_COLUMNS).where(
                documents.c.document_id == document_id
            )
        )
    }
    due_times = {
        r.message_id: r
        for r in conn.execute(
            select(deliveries.c.message_id, deliveries.c.ack_due_at, deliveries.c.register_due_at)
            .join(documents, documents.c.id == deliveries.c.document_pk)
            .where(documents.c.document_id == document_id)
        )
    }
    codes = {s.sender for s in trace.submissions} | {
        r.recipient for s in trace.submissions for r in s.recipients
    }
    names = {
        code: name
        for code, name in conn.execute(
            select(agencies.c.code, agencies.c.name).where(agencies.c.code.in_(codes))
        )
    }
    shown: list[SubmissionView] = []
    for s in trace.submissions:
        whose = scope.recipients_shown(s.sender)
        recipients = [r for r in s.recipients if whose.covers(r.recipient)]
        if not scope.covers(s.sender) and not recipients:
            continue
        shown_headers = headers.get(s.message_id, Headers())
        views = []
        for r in recipients:
            due = due_times.get(r.message_id)
            statuses = [e for e in r.events if e.status_code]
            latest = statuses[-1] if statuses else None
            views.append(
                RecipientView(
                    recipient=r.recipient,
                    recipient_name=names.get(r.recipient),
                    route_to=r.route_to,
                    state=r.state,
                    attempts=r.attempts,
                    last_error=r.last_error,
                    latest_code=latest.status_code if latest else None,
                    latest_name=latest.status if latest else None,
                    latest_at=latest.at if latest else None,
                    steps=_steps(r.events, queued_name),
                    events=r.events,
                    overdue=overdue(
                        r.state,
                        shown_headers.due_date,
                        now,
                        ack_due_at=due.ack_due_at if due else None,
                        register_due_at=due.register_due_at if due else None,
                    ),
                )
            )
        shown.append(
            SubmissionView(
                message_id=s.message_id,
                business=s.business,
                business_type=s.business_type,
                sender=s.sender,
                sender_name=names.get(s.sender),
                submitted_by=s.submitted_by,
                subject=s.subject,
                received_at=s.received_at,
                headers=shown_headers,
                events=s.events if scope.covers(s.sender) else [],
                recipients=views,
            )
        )
    if not shown:
        raise NotFound(document_id)
    return DocumentView(document_id=document_id, submissions=shown)


def in_view(conn: Connection, scope: Scope, document_id: str) -> bool:
    """Whether any submission of ``document_id`` is in ``scope`` (cheap; for live polling)."""
    return (
        conn.execute(
            select(documents.c.id)
            .where(documents.c.document_id == document_id, scope.visible())
            .limit(1)
        ).first()
        is not None
    )


def version(conn: Connection, scope: Scope, document_id: str) -> str:
    """Changes whenever an event is added to, or a delivery changes in, a submission of
    ``document_id`` in ``scope`` (others' submissions with the same id do not show through)."""
    pks = select(documents.c.id).where(documents.c.document_id == document_id, scope.visible())
    last_event, n_events = conn.execute(
        select(func.max(events.c.id), func.count()).where(events.c.document_pk.in_(pks))
    ).one()
    changed = conn.execute(
        select(func.max(deliveries.c.updated_at)).where(deliveries.c.document_pk.in_(pks))
    ).scalar()
    stamp = changed.timestamp() if changed is not None else 0
    return f"{last_event or 0}.{n_events}.{stamp:.6f}"


def per_day(
    conn: Connection, scope: Scope, *, days: int, today: dt.date
) -> list[tuple[dt.date, int]]:
    """Documents received by the hub per day (Vietnam time), over the last ``days`` days."""
    start = today - dt.timedelta(days=days - 1)
    day = func.date(func.timezone("Asia/Ho_Chi_Minh", documents.c.received_at))
    counts: dict[dt.date, int] = {
        d: n
        for d, n in conn.execute(
            select(day, func.count())
            .where(documents.c.received_at >= _day_start(start), scope.visible())
            .group_by(day)
        )
    }
    return [
        (start + dt.timedelta(days=n), int(counts.get(start + dt.timedelta(days=n), 0)))
        for n in range(days)
    ]
