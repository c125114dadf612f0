"""The relay's figures, read from PostgreSQL when Prometheus scrapes.

Counters (``…_total``) count rows added since the relay started: at each scrape the collector
reads the rows of ``documents``, ``events`` and ``rejections`` above the highest id it has
counted, up to the newest row older than :data:`SETTLE_SECONDS` (ids are handed out before
their transaction commits; a row still uncommitted that long after its timestamp would be
missed). Each such query walks the primary key from where the last one stopped, so a scrape
costs the same however big the tables are. Gauges (deliveries by state, destinations down,
deliveries overdue) are read whole each time.

The end-to-end latency is from the hub's receipt of a document to the recipient's 01 (Đã đến)
arriving back at the hub: the document went through the relay, the broker, the recipient's
adapter and its DMS folder, and the answer came back.
"""

from __future__ import annotations

import bisect
import datetime as dt
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Final

import structlog
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import Connection, Engine, Table, func, select
from sqlalchemy.exc import SQLAlchemyError

from relay.db.tables import deliveries, destinations, documents, events, rejections
from relay.deadlines.store import count_overdue
from relay.domain import events as ev
from relay.domain import states
from schemas import topology as t

log = structlog.get_logger()

#: Rows younger than this are counted at a later scrape (see the module docstring).
SETTLE_SECONDS: Final = 5.0
#: End-to-end latency buckets: seconds when all is well, hours when an adapter is down.
E2E_BUCKETS: Final = (0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 86400.0)

_FIELD = re.compile(r"^([a-z_]+)(\.|:|\s)")


def rejection_reason(reason: str) -> str:
    """A short, bounded label for a rejection's reason: the field it names, or a kind."""
    if "larger than the limit" in reason:
        return "too_large"
    if "could not process" in reason:
        return "relay_error"
    m = _FIELD.match(reason)
    return m.group(1) if m else "other"


class _Incremental:
    """Counts rows of one table above a high-water mark (see the module docstring)."""

    def __init__(self, table: Table, at_column: str) -> None:
        self.table = table
        self.at = table.c[at_column]
        self.mark: int | None = None

    def window(self, conn: Connection, now: dt.datetime) -> tuple[int, int] | None:
        settled = now - dt.timedelta(seconds=SETTLE_SECONDS)
        top = conn.execute(
            select(self.table.c.id)
            .where(self.at < settled)
            .order_by(self.table.c.id.desc())
            .limit(1)
        ).scalar_one_or_none()
        top = int(top or 0)
        if self.mark is None:  # the first scrape: start counting from here
            self.mark = top
            return None
        if top <= self.mark:
            return None
        low, self.mark = self.mark, top
        return low, top


class DatabaseCollector(Collector):
    """prometheus-client collector over the relay's database."""

    def __init__(
        self, engine: Engine, clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
    ) -> None:
        self.engine = engine
        self.clock = clock
        self._lock = threading.Lock()
        self._documents = _Incremental(documents, "received_at")
        self._events = _Incremental(events, "at")
        self._rejections = _Incremental(rejections, "at")
        self.accepted: Counter[str] = Counter()  # by business type
        self.statuses: Counter[str] = Counter()  # by status code
        self.rejected: Counter[tuple[str, str]] = Counter()  # (message type, reason)
        self.retries = 0
        self.overdue_notices = 0
        self.e2e_buckets = [0] * (len(E2E_BUCKETS) + 1)
        self.e2e_sum = 0.0

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            try:
                with self.engine.connect() as conn:
                    gauges = self._read(conn)
                up = 1.0
            except SQLAlchemyError as e:
                log.warning("metrics.database_unreachable", reason=str(getattr(e, "orig", e)))
                gauges = []
                up = 0.0
            yield from self._counters()
            yield from gauges
            g = GaugeMetricFamily(
                "lienthong_metrics_database_up",
                "1 when the last scrape could read the relay's database",
            )
            g.add_metric([], up)
            yield g

    # -- reading ----------------------------------------------------------------------

    def _read(self, conn: Connection) -> list[Metric]:
        now = self.clock()
        self._count_new(conn, now)
        by_state = GaugeMetricFamily(
            "lienthong_deliveries", "Deliveries (document x recipient) by state", labels=["state"]
        )
        found: dict[str, int] = {
            state: int(n)
            for state, n in conn.execute(
                select(deliveries.c.state, func.count()).group_by(deliveries.c.state)
            )
        }
        for state in sorted(states.ALL_STATES | set(found)):
            by_state.add_metric([state], float(found.get(state, 0)))
        down = GaugeMetricFamily(
            "lienthong_destinations_down", "Agencies' inboxes counted as down by the relay"
        )
        down.add_metric(
            [],
            float(
                conn.execute(
                    select(func.count())
                    .select_from(destinations)
                    .where(destinations.c.state == "down")
                ).scalar_one()
            ),
        )
        overdue = GaugeMetricFamily(
            "lienthong_deliveries_overdue",
            "Deliveries past their Decree 30 due time, by the status awaited (01, 03)",
            labels=["awaiting"],
        )
        for code, n in sorted(count_overdue(conn, now).items()):
            overdue.add_metric([code], float(n))
        return [by_state, down, overdue]

    def _count_new(self, conn: Connection, now: dt.datetime) -> None:
        w = self._documents.window(conn, now)
        if w:
            for btype, n in conn.execute(
                select(documents.c.business_type, func.count())
                .where(documents.c.id > w[0], documents.c.id <= w[1])
                .group_by(documents.c.business_type)
            ):
                self.accepted[str(btype)] += n
        w = self._rejections.window(conn, now)
        if w:
            for mtype, reason in conn.execute(
                select(rejections.c.message_type, rejections.c.reason).where(
                    rejections.c.id > w[0],
                    rejections.c.id <= w[1],
                    rejections.c.queue != t.RETURNED_QUEUE,
                )
            ):
                self.rejected[(mtype or "unknown", rejection_reason(reason))] += 1
        w = self._events.window(conn, now)
        if w:
            rows = conn.execute(
                select(events.c.kind, events.c.status_code, func.count())
                .where(events.c.id > w[0], events.c.id <= w[1])
                .where(events.c.kind.in_((ev.STATUS, ev.RETRY_SCHEDULED, ev.OVERDUE)))
                .group_by(events.c.kind, events.c.status_code)
            )
            for kind, code, n in rows:
                if kind == ev.STATUS:
                    self.statuses[code or ""] += n
                elif kind == ev.RETRY_SCHEDULED:
                    self.retries += n
                else:
                    self.overdue_notices += n
            for (seconds,) in conn.execute(
                select(func.extract("epoch", events.c.at - documents.c.received_at).label("s"))
                .join(documents, documents.c.id == events.c.document_pk)
                .where(events.c.id > w[0], events.c.id <= w[1])
                .where(events.c.kind == ev.STATUS, events.c.status_code == "01")
            ):
                value = max(float(seconds), 0.0)
                self.e2e_buckets[bisect.bisect_left(E2E_BUCKETS, value)] += 1
                self.e2e_sum += value

    # -- exposing ---------------------------------------------------------------------

    def _counters(self) -> Iterator[Metric]:
        c = CounterMetricFamily(
            "lienthong_documents_accepted",
            "Documents accepted by the relay, by edXML business type (0 new, 1 revoke, …)",
            labels=["business_type"],
        )
        for btype in sorted(set(self.accepted) | {"0"}):
            c.add_metric([btype], float(self.accepted[btype]))
        yield c
        c = CounterMetricFamily(
            "lienthong_statuses_accepted",
            "Statuses accepted and routed by the relay, by status code",
            labels=["status_code"],
        )
        for code in sorted(set(self.statuses) | {"01"}):
            c.add_metric([code], float(self.statuses[code]))
        yield c
        c = CounterMetricFamily(
            "lienthong_submissions_rejected",
            "Submissions the relay refused (the sender got a rejected receipt), by type and reason",
            labels=["type", "reason"],
        )
        for (mtype, reason), n in sorted(self.rejected.items()):
            c.add_metric([mtype, reason], float(n))
        yield c
        c = CounterMetricFamily(
            "lienthong_retries_scheduled", "Returned deliveries scheduled for another attempt"
        )
        c.add_metric([], float(self.retries))
        yield c
        c = CounterMetricFamily(
            "lienthong_overdue_notices", "Overdue receipts sent to senders (one per delivery)"
        )
        c.add_metric([], float(self.overdue_notices))
        yield c
        h = HistogramMetricFamily(
            "lienthong_delivery_acknowledged_seconds",
            "End to end: from the hub receiving a document to the recipient's 01 reaching it",
        )
        cumulative, buckets = 0, []
        for bound, n in zip((*E2E_BUCKETS, float("inf")), self.e2e_buckets, strict=True):
            cumulative += n
            buckets.append((_le(bound), float(cumulative)))
        h.add_metric([], buckets, self.e2e_sum)
        yield h


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)
