"""The metrics measured in the relay's worker processes (the rest comes from the database).

Created on first use, not at import: with several workers the parent sets
``PROMETHEUS_MULTIPROC_DIR`` before it forks them, and :func:`hot_metrics` has prometheus-client
pick its storage again before the first metric is created.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Gauge, Histogram

#: Seconds: a batch takes milliseconds when all is well, seconds when PostgreSQL struggles.
BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class HotMetrics:
    registry: CollectorRegistry
    batch_seconds: Histogram
    batch_messages: Histogram
    intake_paused: Gauge


@functools.cache
def hot_metrics() -> HotMetrics:
    from prometheus_client import CollectorRegistry, Gauge, Histogram, values

    # prometheus-client picks its storage when it is imported; a worker forked from a parent
    # that imported it before setting PROMETHEUS_MULTIPROC_DIR picks it again here.
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    registry = CollectorRegistry(auto_describe=True)
    return HotMetrics(
        registry=registry,
        batch_seconds=Histogram(
            "lienthong_relay_batch_seconds",
            "Time to handle one batch of outbox messages in its database transaction",
            buckets=BATCH_BUCKETS,
            registry=registry,
        ),
        batch_messages=Histogram(
            "lienthong_relay_batch_messages",
            "Outbox messages per batch",
            buckets=(1, 5, 10, 50, 100, 250, 500, 1000, 2500),
            registry=registry,
        ),
        intake_paused=Gauge(
            "lienthong_relay_intake_paused",
            "Worker processes that stopped taking outbox messages (too many bytes held)",
            multiprocess_mode="livesum",
            registry=registry,
        ),
    )


def observe_batch(messages: int, seconds: float) -> None:
    m = hot_metrics()
    m.batch_seconds.observe(seconds)
    m.batch_messages.observe(messages)


def intake_paused(paused: bool) -> None:
    hot_metrics().intake_paused.set(1 if paused else 0)
