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


def latency_timeline(
    completions: Sequence[tuple[float, float]], bucket_s: float = 1.0
) -> list[dict[str, float | int]]:
    """Latency second by second of a paced phase: ``completions`` are (sent at, completed at)
    pairs in seconds; each bucket of ``bucket_s`` of *send* time, counted from the first
    document sent, gives its documents' count, p50 and max in ms. Buckets nobody was sent in
    are left out.

    A p99 made of one stall (every document of two seconds late) reads differently from one
    made of steady queueing (every second a little late): the timeline says which.
    """
    if bucket_s <= 0:
        raise ValueError(f"bucket_s must be positive, got {bucket_s!r}")
    if not completions:
        return []
    first = min(sent for sent, _ in completions)
    buckets: dict[int, list[float]] = {}
    for sent, done in completions:
        buckets.setdefault(int((sent - first) // bucket_s), []).append((done - sent) * 1000.0)
    return [
        {
            "at_s": round(k * bucket_s, 3),
            "count": len(ms),
            "p50_ms": round(percentile(ms, 50), 2),
            "max_ms": round(max(ms), 2),
        }
        for k, ms in sorted(buckets.items())
    ]


def slowest_second(timeline: Sequence[dict[str, float | int]]) -> dict[str, float | int] | None:
    """The bucket of ``timeline`` with the highest p50 (the first of equals); None if empty."""
    if not timeline:
        return None
    return max(timeline, key=lambda b: b["p50_ms"])
