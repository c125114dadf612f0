"""Pure statistics of a benchmark phase: percentiles, throughput, ratios. No I/O."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

MB = 1_000_000  # throughput is reported in decimal megabytes per second


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100) of ``values`` by linear interpolation (numpy's default).

    Raises ValueError for an empty sequence or a ``p`` outside 0-100.
    """
    if not values:
        raise ValueError("percentile of an empty sequence")
    if not 0.0 <= p <= 100.0:
        raise ValueError(f"percentile p must be within 0-100, got {p!r}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    if low == high:
        return ordered[low]
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator``, or None when either is missing or the denominator is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def throughput(count: int, first_at: float, last_at: float) -> float | None:
    """Items per second between the first and the last completion.

    The clock starts at the first completion, so the first item is not counted: a system's
    start-up time (imports, connecting) is left out, the same way for every system measured.
    None when fewer than two items completed or no time passed.
    """
    if count < 2 or last_at <= first_at:
        return None
    return (count - 1) / (last_at - first_at)


@dataclass(frozen=True)
class LatencySummary:
    count: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    def as_dict(self) -> dict[str, float | int]:
        return {
            "count": self.count,
            "p50_ms": round(self.p50_ms, 2),
            "p95_ms": round(self.p95_ms, 2),
            "p99_ms": round(self.p99_ms, 2),
            "max_ms": round(self.max_ms, 2),
        }


def summarize_latencies(seconds: Sequence[float]) -> LatencySummary | None:
    """p50/p95/p99/max in milliseconds of latencies given in seconds; None when there are none."""
    if not seconds:
        return None
    ms = [s * 1000.0 for s in seconds]
    return LatencySummary(
        count=len(ms),
        p50_ms=percentile(ms, 50),
        p95_ms=percentile(ms, 95),
        p99_ms=percentile(ms, 99),
        max_ms=max(ms),
    )
