"""Where the relay's batches spent their time: a summary of its ``relay.flight`` lines.

``python -m tests.bench.flights RELAY.log`` reads a relay log written at debug level (``make
bench BENCH_ARGS="--relay-log-level debug ..."``; the bench prints its log directory) and prints,
for each run of the relay in it (the bench starts it afresh for each drain and for the half-load
phase; a run begins at ``relay.workers_started``) and each stage of :mod:`relay.worker.timings`,
the median, mean, p95 and largest time per batch, and the share of the summed time it took: the
stage with the largest share is what a document waited in. Other lines are skipped.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from relay.worker.timings import STAGES
from tests.bench.stats import percentile


@dataclass
class Flights:
    """The ``relay.flight`` lines of a run (or of several): each stage's time per batch, ms."""

    documents: int = 0
    stages: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})

    @property
    def batches(self) -> int:
        return len(self.stages[STAGES[0]])

    def add(self, entry: dict[str, Any]) -> None:
        self.documents += int(entry.get("documents", 0))
        for s in STAGES:
            self.stages[s].append(float(entry[f"{s}_ms"]))


def read(lines: Iterable[str]) -> Flights:
    """Every ``relay.flight`` line of ``lines``, whichever run."""
    merged = Flights()
    for run in read_runs(lines):
        merged.documents += run.documents
        for s in STAGES:
            merged.stages[s].extend(run.stages[s])
    return merged


def read_runs(lines: Iterable[str]) -> list[Flights]:
    """The ``relay.flight`` lines of each run of the relay, in order (runs without any are
    left out)."""
    runs = [Flights()]
    for line in lines:
        if '"relay.flight"' not in line and '"relay.workers_started"' not in line:
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        event = entry.get("event")
        if event == "relay.workers_started" and runs[-1].batches:
            runs.append(Flights())
        elif event == "relay.flight":
            runs[-1].add(entry)
    return [run for run in runs if run.batches]


def render(flights: Flights) -> str:
    if not flights.batches:
        return "no relay.flight lines: was the relay's log level debug?"
    total = sum(sum(v) for v in flights.stages.values()) or 1.0
    out = [
        f"{flights.batches} batches, {flights.documents} documents "
        f"({flights.documents / flights.batches:.1f} a batch); ms per batch:",
        f"{'stage':<12}{'p50':>9}{'mean':>9}{'p95':>9}{'max':>9}{'share':>8}",
    ]
    for s, values in flights.stages.items():
        out.append(
            f"{s:<12}{percentile(values, 50):9.1f}{sum(values) / len(values):9.1f}"
            f"{percentile(values, 95):9.1f}{max(values):9.1f}{100 * sum(values) / total:7.1f}%"
        )
    return "\n".join(out)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.bench.flights RELAY.log", file=sys.stderr)
        return 2
    runs = read_runs(Path(argv[0]).read_text(errors="replace").splitlines())
    if not runs:
        print(render(Flights()))
    for n, run in enumerate(runs, 1):
        print(f"run {n} of {len(runs)}: {render(run)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
