"""The relay's monitoring endpoint with its own database engine: built here, in the composition
root (``lienthong relay run`` and its multi-process parent, :mod:`lienthong.relay_workers`),
not by the endpoint itself."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from relay.config import Settings


@contextlib.contextmanager
def monitoring(settings: Settings) -> Iterator[None]:
    """``LIENTHONG_METRICS_ADDR``'s endpoint (/metrics, /healthz, /readyz) while the relay runs,
    with the database engine of its figures and checks: the composition root builds it."""
    from relay.db.engine import disposing, monitoring_engine
    from relay.metrics.endpoint import serving_metrics
    from relay.metrics.health import CHECK_TIMEOUT_SECONDS

    with (
        disposing(monitoring_engine(settings.database_url, CHECK_TIMEOUT_SECONDS)) as engine,
        serving_metrics(settings, engine),
    ):
        yield
