"""What the operators' pages read: agencies with their backlog and last activity, and how long
recipients take to answer 01 and 03."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Connection, func, select

from relay.broker.management import ManagementClient
from relay.db.tables import deliveries, documents, events
from relay.directory import repository
from relay.domain import events as ev
from relay.errors import LienthongError
from schemas import topology as t

#: The window over which answer times are measured.
ANSWER_WINDOW: Final = dt.timedelta(days=30)


@dataclass
class AgencyActivity:
    code: str
    name: str
    host: str | None
    state: str
    inbox: int | None  # messages waiting in its inbox (None: no queue, hosted, or unknown)
    outbox: int | None
    inbox_consumers: int | None
    last_sent: dt.datetime | None
    last_status: dt.datetime | None
    median_to_01: float | None  # seconds from the hub receiving a document to the 01
    median_to_03: float | None


@dataclass
class Agencies:
    agencies: list[AgencyActivity]
    broker_error: str | None  # why the backlog is missing, when the management API failed


def _queues(management_url: str, vhost: str) -> tuple[dict[str, dict[str, Any]], str | None]:
    try:
        with ManagementClient(management_url, timeout=5.0) as mgmt:
            return {q["name"]: q for q in mgmt.list_queues(vhost)}, None
    except LienthongError as e:
        return {}, str(e)


def load_agencies(
    conn: Connection, *, management_url: str, vhost: str, now: dt.datetime
) -> Agencies:
    directory = repository.list_agencies(conn)
    queues, error = _queues(management_url, vhost)
    last_sent = {
        sender: at
        for sender, at in conn.execute(
            select(documents.c.sender, func.max(documents.c.received_at)).group_by(
                documents.c.sender
            )
        )
    }
    last_status = {
        actor: at
        for actor, at in conn.execute(
            select(events.c.actor, func.max(events.c.at))
            .where(events.c.kind == ev.STATUS)
            .group_by(events.c.actor)
        )
    }
    elapsed = func.extract("epoch", events.c.at - documents.c.received_at)
    medians: dict[tuple[str, str], float] = {}
    for recipient, code, median in conn.execute(
        select(
            deliveries.c.recipient,
            events.c.status_code,
            func.percentile_cont(0.5).within_group(elapsed),
        )
        .join(deliveries, deliveries.c.id == events.c.delivery_id)
        .join(documents, documents.c.id == deliveries.c.document_pk)
        .where(
            events.c.kind == ev.STATUS,
            events.c.status_code.in_(["01", "03"]),
            documents.c.received_at >= now - ANSWER_WINDOW,
        )
        .group_by(deliveries.c.recipient, events.c.status_code)
    ):
        medians[(recipient, code)] = float(median)

    def one(name: str, field: str) -> int | None:
        q = queues.get(name)
        value = q.get(field) if q else None
        return int(value) if isinstance(value, int) else None

    def lanes(queue_of: Callable[..., str], code: str, field: str) -> int | None:
        """The ordinary and the urgent lane together (DESIGN §3): what waits is what waits."""
        found = [one(queue_of(code, urgent=u), field) for u in (False, True)]
        known = [n for n in found if n is not None]
        return sum(known) if known else None

    found = []
    for a in directory:
        connected = a.host is None
        found.append(
            AgencyActivity(
                code=a.code,
                name=a.name,
                host=a.host,
                state=a.state,
                inbox=lanes(t.inbox_queue, a.code, "messages") if connected else None,
                outbox=lanes(t.outbox_queue, a.code, "messages") if connected else None,
                inbox_consumers=one(t.inbox_queue(a.code), "consumers") if connected else None,
                last_sent=last_sent.get(a.code),
                last_status=last_status.get(a.code),
                median_to_01=medians.get((a.code, "01")),
                median_to_03=medians.get((a.code, "03")),
            )
        )
    return Agencies(agencies=found, broker_error=error)
