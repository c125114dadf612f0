"""``python -m tests.bench``: see :mod:`tests.bench.runner` for what is measured and how."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.bench.env import bench_env, senders_per_worker, services_from_env
from tests.bench.processes import BenchError
from tests.bench.report import machine, print_ratios, print_table, ratios, write_json
from tests.bench.runner import RELAY_WORKERS, PhaseResult, Runner
from tests.bench.scenarios import EXTRA_SYSTEMS, SYSTEMS, large_scenarios, limits, scenarios
from tests.bench.soak import soak


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m tests.bench",
        description="The relay against the broker's ceiling and a naive relay (issue 8).",
    )
    p.add_argument("--quick", action="store_true", help="a 1-2 minute smoke run")
    p.add_argument("--senders", type=int, default=20, help="simulated agency adapters")
    p.add_argument("--fanout", type=int, default=95, help="recipients of the fan-out scenario")
    p.add_argument(
        "--systems",
        default=",".join(SYSTEMS),
        help=f"comma-separated systems ({','.join(SYSTEMS)}; also {','.join(EXTRA_SYSTEMS)})",
    )
    p.add_argument("--scenarios", default="", help="comma-separated scenario names (default all)")
    p.add_argument(
        "--soak",
        type=int,
        default=0,
        metavar="N",
        help="only run N documents through the relay and print its PSS at start, middle and end",
    )
    p.add_argument(
        "--relay-workers",
        type=int,
        default=RELAY_WORKERS,
        metavar="N",
        help=f"the relay's LIENTHONG_WORKERS (default {RELAY_WORKERS})",
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="N",
        help="drain each preload N times per system and report the median drain (a drain of "
        "2 KiB documents lasts 2-5 s, and one moves by a fifth from run to run)",
    )
    p.add_argument(
        "--unbalanced",
        action="store_true",
        help="draw the sender agencies' codes at random, whichever relay worker owns them (by "
        "default as many senders hash to each worker)",
    )
    p.add_argument(
        "--paced-rate",
        type=float,
        default=None,
        metavar="DOCS_PER_S",
        help="offer this rate in every latency phase instead of half each system's throughput "
        "(to compare runs or settings at one load)",
    )
    p.add_argument(
        "--no-settle",
        action="store_true",
        help="do not checkpoint PostgreSQL and sync the disk before each measured phase "
        "(a system may then pay for writes the one measured before it left behind)",
    )
    p.add_argument(
        "--relay-log-level",
        default="warning",
        choices=["debug", "info", "warning", "error"],
        help="the relay's log level (its log is in the bench's log directory)",
    )
    p.add_argument("--output", type=Path, default=Path("bench-results.json"))
    p.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="record the relay with py-spy (raw collapsed stacks) into DIR",
    )
    p.add_argument(
        "--profile-idle",
        action="store_true",
        help="with --profile: keep idle samples too, so waiting shows (wall clock, not CPU)",
    )
    args = p.parse_args(argv)
    systems = [s for s in args.systems.split(",") if s]
    known = SYSTEMS + EXTRA_SYSTEMS
    unknown = [s for s in systems if s not in known]
    if unknown:
        p.error(f"--systems: unknown {', '.join(unknown)}; choose from {', '.join(known)}")
    args.system_list = systems
    if args.senders < 1 or args.fanout < 1 or args.relay_workers < 1 or args.repeat < 1:
        p.error("--senders, --fanout, --relay-workers and --repeat must be at least 1")
    if args.paced_rate is not None and not args.paced_rate > 0:
        p.error("--paced-rate must be a positive number of documents per second")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    lim = limits(args.quick)
    chosen = scenarios(args.quick, args.fanout)
    if args.scenarios:
        names = set(args.scenarios.split(","))
        chosen += large_scenarios(args.quick, args.fanout)
        missing = names - {s.name for s in chosen}
        if missing:
            print(
                f"--scenarios: unknown {', '.join(sorted(missing))}; choose from "
                f"{', '.join(s.name for s in chosen)}",
                file=sys.stderr,
            )
            return 2
        chosen = [s for s in chosen if s.name in names]
    log_dir = Path(tempfile.mkdtemp(prefix="lienthong-bench-"))
    started = time.monotonic()
    payload: dict[str, Any] = {
        "machine": machine(),
        "options": {
            "quick": args.quick,
            "senders": args.senders,
            "fanout": args.fanout,
            "systems": args.system_list,
            "relay_workers": args.relay_workers,
            "senders_spread_over_workers": not args.unbalanced,
            "paced_rate": args.paced_rate,
            "settle": not args.no_settle,
            "repeat": args.repeat,
            "limits": lim.__dict__,
        },
    }
    results: list[PhaseResult] = []
    print(f"bench: logs in {log_dir}", flush=True)
    try:
        spread = 1 if args.unbalanced else args.relay_workers
        with bench_env(services_from_env(), args.senders, args.fanout, spread_over=spread) as env:
            print(
                f"bench: vhost {env.settings.vhost!r}, {args.senders} senders, "
                f"{args.fanout} recipients, relay with {args.relay_workers} worker process(es) "
                f"owning {'/'.join(map(str, senders_per_worker(env, args.relay_workers)))} of "
                "the senders",
                flush=True,
            )
            relay_env = {
                "LIENTHONG_WORKERS": str(args.relay_workers),
                "LIENTHONG_LOG_LEVEL": args.relay_log_level,
            }
            runner = Runner(
                env,
                lim,
                log_dir,
                relay_env,
                args.profile,
                args.profile_idle,
                args.paced_rate,
                settle=not args.no_settle,
                repeat=args.repeat,
            )
            try:
                if args.soak:
                    payload["soak"] = soak(runner, args.soak, chosen[0].body_bytes)
                else:
                    for sc in chosen:
                        results.extend(runner.run_scenario(sc, args.system_list))
            finally:
                runner.close()
    except BenchError as e:
        print(f"bench failed: {e}", file=sys.stderr)
        return 1
    finally:
        payload["seconds"] = round(time.monotonic() - started, 1)
        payload["results"] = [r.as_dict() for r in results]
        payload["ratios"] = ratios(results)
        write_json(args.output, payload)
    if results:
        print()
        print_table(results)
        print_ratios(payload["ratios"], paced=args.paced_rate is not None)
    print(f"\nbench: {payload['seconds']} s; results in {args.output}")
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
