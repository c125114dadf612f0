"""``--soak N``: N documents through the relay, its PSS sampled as they go (flat or growing?)."""

from __future__ import annotations

import time
from typing import Any

from tests.bench.processes import BenchError, expect
from tests.bench.runner import Runner
from tests.bench.scenarios import Scenario
from tests.bench.stats import MB, summarize_latencies, throughput

MAX_BACKLOG = 3000  # documents published but not yet delivered: the outboxes stay short


def soak(runner: Runner, n: int, body_bytes: int) -> dict[str, Any]:
    sc = Scenario("soak-2KiB-1", 1, body_bytes, 0, n)
    templates = runner.templates(sc)
    collector, publisher, completed = runner.start_helpers(sc, templates)
    system = None
    trace: list[dict[str, Any]] = []
    try:
        system = runner.start_system("relay", sc)
        phase = runner.next_phase()
        publisher.conn.send(("publish", phase, n, None, runner.limits.window, MAX_BACKLOG))
        started = time.monotonic()
        deadline = started + max(600.0, n / 50)
        marks = [max(1, n * k // 10) for k in range(0, 11)]  # first doc, then each 10 %
        next_mark = 0
        while next_mark < len(marks):
            system.check()
            value = completed.value
            while next_mark < len(marks) and value >= marks[next_mark]:
                pss = system.sampler.sample()
                trace.append(
                    {
                        "docs": value,
                        "seconds": round(time.monotonic() - started, 1),
                        "pss_mb": round(pss / 2**20, 1),
                    }
                )
                print(f"  soak: {value:>7} docs, relay PSS {pss / 2**20:7.1f} MB", flush=True)
                next_mark += 1
            if time.monotonic() > deadline:
                raise BenchError(f"soak: only {value} of {n} documents after {deadline - started}s")
            time.sleep(0.05)
        expect(publisher.conn, "published", 60, "publisher")
        runner.env.purge(runner.env.outboxes)
        collector.conn.send(("report",))
        done = expect(collector.conn, "report", 60, "collector")[1]
        rate = throughput(len(done), min(c[2] for c in done), max(c[2] for c in done))
        lat = summarize_latencies([c[2] - c[1] for c in done])
        peak = system.stop() / 2**20
        system = None
        result = {
            "documents": n,
            "delivered": len(done),
            "docs_per_s": None if rate is None else round(rate, 1),
            "mb_per_s": None if rate is None else round(rate * body_bytes / MB, 2),
            "latency_at_max_backlog": lat.as_dict() if lat else None,
            "pss_start_mb": trace[0]["pss_mb"],  # at the first document
            "pss_warm_mb": trace[min(1, len(trace) - 1)]["pss_mb"],  # at 10 %, warmed up
            "pss_middle_mb": trace[len(trace) // 2]["pss_mb"],
            "pss_end_mb": trace[-1]["pss_mb"],
            "peak_pss_mb": round(peak, 1),
            "trace": trace,
        }
        print(
            f"soak: {n} documents, {result['docs_per_s']} docs/s; relay PSS start "
            f"{result['pss_start_mb']} MB (at 10 %: {result['pss_warm_mb']} MB), middle "
            f"{result['pss_middle_mb']} MB, end "
            f"{result['pss_end_mb']} MB (peak {result['peak_pss_mb']} MB)",
            flush=True,
        )
        return result
    finally:
        if system is not None:
            system.stop()
        publisher.stop(("stop",))
        collector.stop(("stop",))
