"""``LIENTHONG_METRICS_ADDR``: the relay's ``/metrics``, ``/healthz`` and ``/readyz``.

Served by the process the operator started: with one worker, the relay itself; with several,
the parent, which sets ``PROMETHEUS_MULTIPROC_DIR`` (a directory of its own, removed at the
end) before the workers start so that prometheus-client's multiprocess mode sums what they
measure. The figures read from the database are the same in either case.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import structlog
from sqlalchemy import Engine

from lienthong.monitoring import AddressError, Check, MonitoringServer, parse_addr
from relay.config import Settings
from relay.errors import InvalidInput, ServiceUnavailable
from relay.metrics.collector import DatabaseCollector
from relay.metrics.health import database_problem, schema_problem

log = structlog.get_logger()

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@contextmanager
def multiprocess_dir(settings: Settings) -> Iterator[None]:
    """With several workers and the endpoint on: ``PROMETHEUS_MULTIPROC_DIR`` set (a directory
    of its own, removed at the end) before the workers are forked, which inherit it;
    :func:`serving_metrics` then sums what they write there."""
    try:
        addr = parse_addr(settings.metrics_addr)
    except AddressError as e:
        raise InvalidInput(f"LIENTHONG_METRICS_ADDR: {e}") from e
    if settings.workers <= 1 or addr is None or os.environ.get(MULTIPROC_ENV):
        yield
        return
    shared = tempfile.mkdtemp(prefix="lienthong-metrics-")
    os.environ[MULTIPROC_ENV] = shared
    try:
        yield
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(shared, ignore_errors=True)


@contextmanager
def serving_metrics(
    settings: Settings, engine: Engine, broker: Check
) -> Iterator[MonitoringServer | None]:
    """Serve the endpoint (if ``metrics_addr`` is set) while the relay runs.

    ``engine``: the figures' and the checks' own (:func:`relay.db.engine.monitoring_engine`);
    ``broker``: the RabbitMQ check (:class:`relay.metrics.health.BrokerCheck`, which keeps its
    connection); both built, and disposed of or closed, by the caller, the composition root."""
    try:
        addr = parse_addr(settings.metrics_addr)
    except AddressError as e:
        raise InvalidInput(f"LIENTHONG_METRICS_ADDR: {e}") from e
    if addr is None:
        yield None
        return
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    from relay.metrics.hot import hot_metrics

    shared: str | None = None
    owned = True  # the directory is this function's to remove
    registry = CollectorRegistry(auto_describe=True)
    if settings.workers > 1:
        shared = os.environ.get(MULTIPROC_ENV)  # set before the workers started
        if shared is None:
            shared = tempfile.mkdtemp(prefix="lienthong-metrics-")
            os.environ[MULTIPROC_ENV] = shared  # inherited by the workers it starts
        else:
            owned = False
        MultiProcessCollector(registry, path=shared)  # type: ignore[no-untyped-call]
    else:
        registry.register(hot_metrics().registry)
    registry.register(DatabaseCollector(engine))
    server = MonitoringServer(
        addr,
        registry,
        health=[broker, lambda: database_problem(engine)],
        ready=[lambda: schema_problem(engine)],
    )
    try:
        server.start()
    except AddressError as e:
        raise ServiceUnavailable(f"LIENTHONG_METRICS_ADDR: {e}") from e
    log.info("relay.metrics_serving", addr=f"{addr[0]}:{server.port}")
    try:
        yield server
    finally:
        server.stop()
        if shared is not None and owned:
            os.environ.pop(MULTIPROC_ENV, None)
            shutil.rmtree(shared, ignore_errors=True)
