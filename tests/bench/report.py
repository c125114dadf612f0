"""The run's summary: a table per scenario, the ratios, and the JSON results file."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tests.bench.runner import PhaseResult
from tests.bench.scenarios import CEILING_RECEIPT
from tests.bench.stats import ratio


def ratios(results: Iterable[PhaseResult]) -> dict[str, dict[str, float | None]]:
    """Per scenario: relay/ceiling and relay/naive throughput, and the p99s side by side."""
    by: dict[str, dict[str, PhaseResult]] = {}
    for r in results:
        by.setdefault(r.scenario, {})[r.system] = r
    out: dict[str, dict[str, float | None]] = {}
    for scenario, systems in by.items():
        relay, ceiling, naive = systems.get("relay"), systems.get("ceiling"), systems.get("naive")

        def rate(r: PhaseResult | None) -> float | None:
            return r.docs_per_s if r is not None else None

        def p99(r: PhaseResult | None) -> float | None:
            if r is None or r.latency is None:
                return None
            return float(r.latency["p99_ms"])

        def p99_at_relay_load(r: PhaseResult | None) -> float | None:
            if r is None or r.latency_at_relay_load is None:
                return None
            return float(r.latency_at_relay_load["p99_ms"])

        rc = ratio(rate(relay), rate(ceiling))
        rn = ratio(rate(relay), rate(naive))
        with_receipt = systems.get(CEILING_RECEIPT)
        rr = ratio(rate(relay), rate(with_receipt))
        out[scenario] = {
            "relay_over_ceiling": None if rc is None else round(rc, 3),
            "relay_over_naive": None if rn is None else round(rn, 3),
            "relay_p99_ms": p99(relay),
            "ceiling_p99_ms": p99(ceiling),
            "ceiling_p99_ms_at_relay_load": p99_at_relay_load(ceiling),
            "naive_p99_ms": p99(naive),
            "relay_over_ceiling_receipt": None if rr is None else round(rr, 3),
            "ceiling_receipt_p99_ms_at_relay_load": p99_at_relay_load(with_receipt),
        }
    return out


def _fmt(x: object, width: int) -> str:
    text = "-" if x is None else f"{x:,.1f}" if isinstance(x, float) else str(x)
    return text.rjust(width)


def _ratio(x: float | None) -> str:
    return "-".rjust(6) if x is None else f"{x:6.2f}"


def print_table(results: list[PhaseResult]) -> None:
    head = (
        f"{'scenario':<18}{'system':<16}{'docs':>7}{'docs/s':>10}{'MB/s':>8}{'copies/s':>10}"
        f"{'load/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'PSS MB':>8}{'RSS MB':>8}"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        lat = r.latency or {}
        print(
            f"{r.scenario:<18}{r.system:<16}{_fmt(r.docs, 7)}{_fmt(r.docs_per_s, 10)}"
            f"{_fmt(r.mb_per_s, 8)}{_fmt(r.copies_per_s, 10)}{_fmt(r.offered_rate, 9)}"
            f"{_fmt(lat.get('p50_ms'), 9)}{_fmt(lat.get('p95_ms'), 9)}"
            f"{_fmt(lat.get('p99_ms'), 9)}{_fmt(r.peak_pss_mb, 8)}{_fmt(r.peak_rss_mb, 8)}"
        )
        for note in r.notes:
            print(f"{'':34}note: {note}")
        if r.error:
            print(f"{'':34}ERROR: {r.error}")


def print_ratios(table: dict[str, dict[str, float | None]], *, paced: bool = False) -> None:
    """One line per scenario; ``paced``: every latency phase ran at one rate (--paced-rate), so
    the ceiling's own p99 is at that rate too, not at half its maximum."""
    own = "at the paced rate" if paced else "at half its own maximum"
    print()
    for scenario, row in table.items():
        print(
            f"{scenario:<18} relay/ceiling {_ratio(row['relay_over_ceiling'])}   "
            f"relay/naive {_ratio(row['relay_over_naive'])}   "
            f"p99 relay {_fmt(row['relay_p99_ms'], 7)} ms, ceiling "
            f"{_fmt(row['ceiling_p99_ms_at_relay_load'], 7)} ms at the same load "
            f"({_fmt(row['ceiling_p99_ms'], 7)} ms {own})"
        )
        if row.get("relay_over_ceiling_receipt") is not None:
            print(
                f"{'':<18} relay/{CEILING_RECEIPT} {_ratio(row['relay_over_ceiling_receipt'])}   "
                f"p99 {CEILING_RECEIPT} "
                f"{_fmt(row['ceiling_receipt_p99_ms_at_relay_load'], 7)} ms at the relay's load"
            )


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def write_json(path: Path, payload: dict[str, Any]) -> None:
    payload = {"written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **payload}
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
