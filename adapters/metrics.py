"""The adapter's ``/metrics``, ``/healthz`` and ``/readyz`` on ``metrics_addr`` (off by default).

Everything is read when Prometheus scrapes, from the spool (SQLite, read-only connection) and
the folders, so the adapter's work pays nothing for it:

- ``lienthong_adapter_spool_depth`` / ``lienthong_adapter_spool_oldest_seconds``: submissions
  taken from the DMS and not yet confirmed by the broker, and how long the oldest has waited
  (growing: the broker is unreachable or the outbox refuses publishes);
- ``lienthong_adapter_sent_total{type}`` / ``lienthong_adapter_received_total{type}``: what the
  spool has recorded since it was created;
- ``lienthong_adapter_files_rejected_total``: files in ``outbox/rejected/`` (each with its
  ``.error.txt``);
- ``lienthong_adapter_broker_connected``: 1 while the adapter's AMQP connection is up;
- ``lienthong_adapter_assemblies{state}``: documents being received in chunks (``active``) and
  those given up (``abandoned``: the hub refused the rest, or ``assembly_timeout_hours`` passed;
  never handed over, the log says why).

``/healthz`` is 200 when the broker connection is up and the spool can be read, 503 with the
reason otherwise; ``/readyz`` is the same (the adapter has nothing else to wait for).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import closing

import structlog
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from adapters.assembly import ABANDONED, ACTIVE
from adapters.config import AdapterConfig
from lienthong.monitoring import MonitoringServer, parse_addr

log = structlog.get_logger()


class SpoolCollector(Collector):
    def __init__(self, config: AdapterConfig, connected: Callable[[], bool]) -> None:
        self.config = config
        self.connected = connected

    def _read(self) -> tuple[int, float, dict[str, int], dict[str, int]]:
        uri = f"file:{self.config.spool_path}?mode=ro"
        with closing(sqlite3.connect(uri, uri=True, timeout=5.0)) as db:
            depth, oldest = db.execute(
                "SELECT count(*), min(spooled_at) FROM outgoing WHERE sent_at IS NULL"
            ).fetchone()
            sent = dict(
                db.execute(
                    "SELECT message_type, count(*) FROM outgoing WHERE sent_at IS NOT NULL "
                    "GROUP BY message_type"
                ).fetchall()
            )
            received = dict(
                db.execute("SELECT kind, count(*) FROM received_items GROUP BY kind").fetchall()
            )
        age = 0.0
        if oldest:
            age = (dt.datetime.now(dt.UTC) - dt.datetime.fromisoformat(oldest)).total_seconds()
        return int(depth), max(age, 0.0), sent, received

    def collect(self) -> Iterator[Metric]:
        labels = {"agency": self.config.agency}
        names, values = list(labels), list(labels.values())
        connected = GaugeMetricFamily(
            "lienthong_adapter_broker_connected",
            "1 while the adapter's AMQP connection is up",
            labels=names,
        )
        connected.add_metric(values, 1.0 if self.connected() else 0.0)
        yield connected
        try:
            depth, age, sent, received = self._read()
        except sqlite3.Error as e:
            log.warning("adapter.metrics_spool_unreadable", reason=str(e))
            return
        g = GaugeMetricFamily(
            "lienthong_adapter_spool_depth",
            "Submissions taken from the DMS and not yet confirmed by the broker",
            labels=names,
        )
        g.add_metric(values, float(depth))
        yield g
        g = GaugeMetricFamily(
            "lienthong_adapter_spool_oldest_seconds",
            "How long the oldest unsent submission has waited in the spool (0: none)",
            labels=names,
        )
        g.add_metric(values, age)
        yield g
        for name, doc, counts in (
            ("lienthong_adapter_sent", "Submissions confirmed by the broker", sent),
            ("lienthong_adapter_received", "Inbox messages stored for the DMS", received),
        ):
            c = CounterMetricFamily(name, doc, labels=[*names, "type"])
            for mtype in sorted(set(counts) | {"document", "status"}):
                c.add_metric([*values, mtype], float(counts.get(mtype, 0)))
            yield c
        rejected = CounterMetricFamily(
            "lienthong_adapter_files_rejected",
            "Files the adapter could not send (outbox/rejected/, each with its .error.txt)",
            labels=names,
        )
        try:
            n = sum(1 for _ in self.config.rejected_dir.glob("*.error.txt"))
        except OSError:
            n = 0
        rejected.add_metric(values, float(n))
        yield rejected
        assemblies = self._assemblies()
        if assemblies is not None:
            g = GaugeMetricFamily(
                "lienthong_adapter_assemblies",
                "Documents being received in chunks (active) and given up (abandoned)",
                labels=[*names, "state"],
            )
            for state in (ACTIVE, ABANDONED):
                g.add_metric([*values, state], float(assemblies.get(state, 0)))
            yield g

    def _assemblies(self) -> dict[str, int] | None:
        """Assemblies by state; None before the adapter received anything in chunks."""
        uri = f"file:{self.config.spool_path}?mode=ro"
        try:
            with closing(sqlite3.connect(uri, uri=True, timeout=5.0)) as db:
                rows = db.execute(
                    "SELECT CASE WHEN abandoned_at IS NULL THEN ? ELSE ? END, count(*) "
                    "FROM assemblies GROUP BY 1",
                    (ACTIVE, ABANDONED),
                ).fetchall()
        except sqlite3.Error:  # no such table (or column) yet: nothing received in chunks
            return None
        return {str(state): int(n) for state, n in rows}


def serve_metrics(config: AdapterConfig, connected: threading.Event) -> MonitoringServer | None:
    """Start the endpoint when ``metrics_addr`` is set (else None); the caller stops it."""
    addr = parse_addr(config.metrics_addr)
    if addr is None:
        return None
    registry = CollectorRegistry(auto_describe=True)
    registry.register(SpoolCollector(config, connected.is_set))

    def broker() -> str | None:
        if connected.is_set():
            return None
        return f"RabbitMQ is unreachable at {config.safe_url()} (the adapter is reconnecting)"

    def spool() -> str | None:
        try:
            uri = f"file:{config.spool_path}?mode=ro"
            with closing(sqlite3.connect(uri, uri=True, timeout=5.0)) as db:
                db.execute("SELECT 1 FROM outgoing LIMIT 1").fetchall()
        except sqlite3.Error as e:
            return f"the spool {str(config.spool_path)!r} cannot be read: {e}"
        return None

    server = MonitoringServer(addr, registry, health=[broker, spool]).start()
    log.info("adapter.metrics_serving", agency=config.agency, addr=f"{addr[0]}:{server.port}")
    return server
