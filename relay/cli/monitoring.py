"""The relay's monitoring endpoint with its own database engine and broker check: built here,
in the composition root (``lienthong relay run`` and its multi-process parent,
:mod:`lienthong.relay_workers`), not by the endpoint itself."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from relay.config import Settings

if TYPE_CHECKING:
    from lienthong.monitoring import MonitoringServer


@contextlib.contextmanager
def monitoring(settings: Settings) -> Iterator[MonitoringServer | None]:
    """``LIENTHONG_METRICS_ADDR``'s endpoint (/metrics, /healthz, /readyz) while the relay runs,
    with the database engine of its figures and checks and the RabbitMQ check's one kept
    connection (closed when the endpoint stops): the composition root builds them. Yields the
    endpoint (None when ``LIENTHONG_METRICS_ADDR`` is empty)."""
    from relay.db.engine import disposing, monitoring_engine
    from relay.metrics.endpoint import serving_metrics
    from relay.metrics.health import CHECK_TIMEOUT_SECONDS, BrokerCheck

    with (
        disposing(monitoring_engine(settings.database_url, CHECK_TIMEOUT_SECONDS)) as engine,
        contextlib.closing(BrokerCheck(settings.amqp_url)) as broker,
        serving_metrics(settings, engine, broker) as server,
    ):
        yield server
