"""One benchmark run: for each scenario, each system drains a preload, then runs at half load.

Per system and scenario:
1. the simulated adapters queue ``preload`` documents in their outboxes (the system is down);
2. the system starts; throughput is counted from the first completed document to the last
   (a document is complete when every recipient's inbox holds its copy and, for the naive relay
   and the relay, its delivery rows are committed and no longer ``pending``); what is left after
   ``drain_cap_s`` is purged;
3. the adapters offer documents at half that throughput for ``paced_s``; the latency of each is
   its last copy's arrival minus its send time;
4. the system stops; its peak memory is kept (PSS summed over its process tree; RSS summed
   beside it).

Before each measured drain and paced phase the disk is settled (:meth:`Runner.settle_io`): a
PostgreSQL ``CHECKPOINT`` and a ``sync``, so that a system does not pay for writes the one
measured before it left behind (the naive relay's WAL, a preload's quorum-queue segments).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from relay.db.engine import make_engine
from schemas import topology as t
from tests.bench import cpu
from tests.bench.ceiling import run_ceiling
from tests.bench.collector import Completion, run_collector
from tests.bench.env import BenchEnv
from tests.bench.msgid import phase_like_pattern, phase_of
from tests.bench.naive import run_naive
from tests.bench.payloads import Template, build_template
from tests.bench.processes import (
    CTX,
    BenchError,
    MemorySampler,
    RelayProcess,
    Worker,
    expect,
)
from tests.bench.scenarios import CEILING_RECEIPT, CEILINGS, Limits, Scenario
from tests.bench.stats import (
    MB,
    latency_timeline,
    slowest_second,
    summarize_latencies,
    throughput,
)

POLL_S = 0.05
STARTUP_S = 60.0  # for a system to deliver its first document
CEILING_PREFETCH = 250  # per outbox consumer
#: The relay's worker processes (``LIENTHONG_WORKERS``) unless ``--relay-workers`` says otherwise:
#: one per core. On two cores (2026-12-01, relay-only runs) two moved as many documents as three
#: (2KiB-1: 3,491 and 3,670 docs/s against 3,504; 2KiB-fanout95: 65.8 against 62.7) with 30-70
#: MB less at peak (2KiB-1 177-182 against 212 MB; fan-out 221 against 289; 20MB-fanout95 236-250
#: against 262-321): each worker costs about 40 MB before any document, and holds its own intake.
RELAY_WORKERS = os.cpu_count() or 1


@dataclass
class PhaseResult:
    scenario: str
    system: str
    recipients: int
    body_bytes: int
    preload: int
    docs: int = 0
    docs_per_s: float | None = None
    mb_per_s: float | None = None  # documents in (submission bodies), decimal MB
    copies_per_s: float | None = None
    drain_s: float | None = None
    purged: int = 0
    rows_committed: int | None = None
    commit_lag_ms: float | None = None  # last arrival -> last delivery row no longer pending
    settle_s: float | None = None  # the disk settled before the drain (Runner.settle_io)
    #: CPU milliseconds per document drained (first document to last), by process group: the
    #: system's process tree, RabbitMQ, PostgreSQL (tests.bench.cpu.ms_per). Steadier than
    #: docs/s, which moves with whatever else had the cores
    drain_cpu_ms: dict[str, float | None] = field(default_factory=dict)
    #: with ``--repeat N``: every drain's docs/s; the figures above are the median drain's
    drain_rates: list[float | None] = field(default_factory=list)
    offered_rate: float | None = None
    latency_sent: int = 0
    latency: dict[str, float | int] | None = None
    #: the latency phase second by second of send time (count, p50, max): a stall or queueing
    latency_timeline: list[dict[str, float | int]] = field(default_factory=list)
    latency_at_relay_load: dict[str, float | int] | None = None  # ceiling: at the relay's rate
    latency_at_relay_load_timeline: list[dict[str, float | int]] = field(default_factory=list)
    #: who had the cores in the latency phase: the system, RabbitMQ, PostgreSQL (tests.bench.cpu)
    latency_cores: dict[str, dict[str, float | None]] = field(default_factory=dict)
    latency_at_relay_load_cores: dict[str, dict[str, float | None]] = field(default_factory=dict)
    peak_pss_mb: float | None = None  # PSS summed over the system's process tree
    peak_rss_mb: float | None = None  # RSS summed (counts shared pages once per process)
    publish_nacked: int = 0
    seconds: float | None = None  # wall time of this system's whole measurement
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Offered:
    """What one paced phase measured."""

    summary: dict[str, float | int] | None
    timeline: list[dict[str, float | int]]
    cores: dict[str, dict[str, float | None]]
    sent: int
    notes: list[str]
    peak_pss: int


class System:
    """A running system under test, whatever its kind."""

    def __init__(self, name: str, handle: Worker | RelayProcess, sampler: MemorySampler) -> None:
        self.name = name
        self.handle = handle
        self.sampler = sampler
        self.profiler: subprocess.Popen[bytes] | None = None
        self.peak_rss = 0

    def check(self) -> None:
        if not self.handle.alive():
            if isinstance(self.handle, RelayProcess):
                raise BenchError(self.handle.failure())
            raise BenchError(f"{self.name} exited with code {self.handle.process.exitcode}")

    def stop(self) -> int:
        if self.profiler is not None and self.profiler.poll() is None:
            self.profiler.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            try:
                self.profiler.wait(30)
            except subprocess.TimeoutExpired:
                self.profiler.kill()
        peak = self.sampler.stop()
        self.peak_rss = self.sampler.peak_rss
        self.handle.stop()
        return peak


class Runner:
    def __init__(
        self,
        env: BenchEnv,
        limits: Limits,
        log_dir: Path,
        relay_env: dict[str, str] | None = None,
        profile_dir: Path | None = None,
        profile_idle: bool = False,
        paced_rate: float | None = None,
        settle: bool = True,
        repeat: int = 1,
    ) -> None:
        self.env = env
        self.limits = limits
        self.log_dir = log_dir
        #: settings of ``lienthong relay run`` beyond the environment's URLs (workers, log level)
        self.relay_env = relay_env or {"LIENTHONG_LOG_LEVEL": "warning"}
        self.profile_dir = profile_dir
        self.profile_idle = profile_idle  # py-spy --idle: waiting shows too (wall clock)
        #: documents/s offered in every latency phase instead of half the system's throughput
        self.paced_rate = paced_rate
        #: settle the disk before each measured phase (``--no-settle``: as it is)
        self.settle = settle
        #: drains per system and scenario; the median one's figures are reported
        self.repeat = repeat
        self.phase = 0
        self.peak_rss = 0  # RSS summed of the system measured now (see MemorySampler)
        self.engine: Engine = make_engine(env.settings.database_url, pool_size=1)

    def close(self) -> None:
        self.engine.dispose()

    def settle_io(self) -> tuple[float | None, str | None]:
        """Write out what earlier phases left for the disk: PostgreSQL's dirty buffers and WAL
        (``CHECKPOINT``, which a superuser or ``pg_checkpoint`` may run) and the kernel's dirty
        pages (``sync``). Returns the seconds it took (None when not settling) and why the
        checkpoint could not be made, if it could not."""
        if not self.settle:
            return None, None
        began = time.monotonic()
        failed = None
        try:
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("CHECKPOINT"))
        except SQLAlchemyError as e:
            failed = f"no CHECKPOINT before the phase: {str(e).splitlines()[0]}"
        os.sync()
        return round(time.monotonic() - began, 2), failed

    def next_phase(self) -> int:
        self.phase += 1
        if self.phase > 0xFF:
            raise BenchError("more than 255 phases in one run")
        return self.phase

    # -- the processes ------------------------------------------------------------------------

    def templates(self, sc: Scenario) -> dict[str, Template]:
        recipients = self.env.recipients[: sc.recipients]
        return {
            code: build_template(
                code, recipients, body_bytes=sc.body_bytes, attachment_bytes=sc.attachment_bytes
            )
            for code in self.env.sender_codes
        }

    def start_helpers(
        self, sc: Scenario, templates: dict[str, Template]
    ) -> tuple[Worker, Worker, Synchronized[int]]:
        url = self.env.settings.amqp_url
        completed: Synchronized[int] = CTX.Value("q", 0)
        queues = [t.inbox_queue(c) for c in self.env.recipients[: sc.recipients]]
        queues += [t.inbox_queue(c) for c in self.env.sender_codes]  # receipts
        collector = Worker("collector", run_collector, url, queues, sc.recipients, completed)
        collector.start()
        publisher = Worker(
            "publisher", run_publisher_entry, url, self.env.senders, templates, completed
        )
        try:
            publisher.start()
        except BaseException:
            collector.stop(("stop",))
            raise
        return collector, publisher, completed

    def start_system(self, name: str, sc: Scenario, profile_as: str | None = None) -> System:
        url = self.env.settings.amqp_url
        recipients = self.env.recipients[: sc.recipients]
        handle: Worker | RelayProcess
        if name in CEILINGS:
            receipts = name == CEILING_RECEIPT
            handle = Worker(
                name, run_ceiling, url, self.env.outboxes, recipients, CEILING_PREFETCH, receipts
            ).start()
        elif name == "naive":
            handle = Worker(
                "naive", run_naive, url, self.env.settings.database_url, self.env.outboxes
            ).start()
        elif name == "relay":
            env = {**self.env.relay_env(), **self.relay_env}
            handle = RelayProcess(env, self.log_dir / f"relay-{sc.name}.log")
        else:
            raise BenchError(f"unknown system {name!r}")
        pid = handle.pid
        system = System(name, handle, MemorySampler(pid).start())
        if profile_as and self.profile_dir is not None:
            if name == "relay" and int(env.get("LIENTHONG_WORKERS", "1")) > 1:
                _wait_for_exec(pid)  # py-spy follows a process image, not a pid through exec
            self.profile_dir.mkdir(parents=True, exist_ok=True)
            out = self.profile_dir / f"{profile_as}.txt"
            system.profiler = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "py-spy"),
                    *("record", "--pid", str(pid), "--rate", "200", "--nonblocking"),
                    "--subprocesses",  # the relay's worker processes
                    *("--format", "raw", "--output", str(out)),
                    *(("--idle",) if self.profile_idle else ()),
                ],
                stdout=subprocess.DEVNULL,
                stderr=(self.profile_dir / f"{profile_as}.log").open("wb"),
            )
        return system

    # -- the steps ----------------------------------------------------------------------------

    def publish(
        self,
        publisher: Worker,
        phase: int,
        count: int,
        rate: float | None,
        timeout: float,
        max_backlog: int | None = None,
    ) -> tuple[int, int]:
        """Publish ``count`` documents; returns (nacked, returned)."""
        publisher.conn.send(("publish", phase, count, rate, self.limits.window, max_backlog))
        msg = expect(publisher.conn, "published", timeout, "publisher")
        return int(msg[2]), int(msg[3])

    def report(self, collector: Worker, phase: int) -> list[Completion]:
        collector.conn.send(("report",))
        msg = expect(collector.conn, "report", 60, "collector")
        done: list[Completion] = msg[1]
        return [c for c in done if phase_of(c[0]) == phase]

    def wait_for(
        self, completed: Synchronized[int], target: int, deadline: float, system: System
    ) -> bool:
        while completed.value < target:
            if time.monotonic() >= deadline:
                return False
            system.check()
            time.sleep(POLL_S)
        return True

    def committed_rows(self, phase: int) -> int:
        with self.engine.connect() as db:
            return int(
                db.execute(
                    text(
                        "SELECT count(*) FROM deliveries d JOIN documents m "
                        "ON m.id = d.document_pk WHERE m.message_id LIKE :p "
                        "AND d.state <> 'pending'"
                    ),
                    {"p": phase_like_pattern(phase)},
                ).scalar_one()
            )

    def wait_committed(self, phase: int, expected: int, timeout: float = 30) -> tuple[int, float]:
        """(rows, when): when the phase's delivery rows stopped being pending; the first
        check counts as "already" (0.0) since the rows may have been committed long before."""
        rows = self.committed_rows(phase)
        if rows >= expected:
            return rows, 0.0
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(POLL_S)
            rows = self.committed_rows(phase)
            if rows >= expected:
                return rows, time.time()
        return rows, time.time()

    # -- one system, one scenario -------------------------------------------------------------

    def measure(
        self,
        sc: Scenario,
        system_name: str,
        publisher: Worker,
        collector: Worker,
        completed: Synchronized[int],
        body_bytes: int,
    ) -> PhaseResult:
        res = PhaseResult(sc.name, system_name, sc.recipients, body_bytes, sc.preload)
        peak = 0
        self.peak_rss = 0
        began = time.monotonic()
        try:
            drains: list[PhaseResult] = []
            for _ in range(self.repeat):
                one = PhaseResult(sc.name, system_name, sc.recipients, body_bytes, sc.preload)
                drains.append(one)
                peak = max(
                    peak,
                    self.throughput_phase(one, sc, publisher, collector, completed, body_bytes),
                )
            res = median_drain(drains)
            if res.docs_per_s and sc.latency:
                peak = max(peak, self.latency_phase(res, sc, publisher, collector, completed))
        except BenchError as e:
            res.error = str(e)
        res.peak_pss_mb = round(peak / 2**20, 1) if peak else None
        res.peak_rss_mb = round(self.peak_rss / 2**20, 1) if self.peak_rss else None
        res.seconds = round(time.monotonic() - began, 1)
        return res

    def throughput_phase(
        self,
        res: PhaseResult,
        sc: Scenario,
        publisher: Worker,
        collector: Worker,
        completed: Synchronized[int],
        body_bytes: int,
    ) -> int:
        """Drain a preload; returns the system's peak PSS."""
        phase = self.next_phase()
        nacked, returned = self.publish(publisher, phase, sc.preload, None, timeout=600)
        res.publish_nacked = nacked
        if returned:
            res.notes.append(f"{returned} submissions returned unroutable")
        res.settle_s, failed = self.settle_io()
        if failed:
            res.notes.append(failed)
        base = completed.value
        profile_as = f"{res.system}-{sc.name}" if res.system == "relay" else None
        system = self.start_system(res.system, sc, profile_as)
        peak = 0
        try:
            started = time.monotonic()
            if not self.wait_for(completed, base + 1, started + STARTUP_S, system):
                raise BenchError(f"{res.system}: no document came through in {STARTUP_S:.0f}s")
            first_count = completed.value
            before = {name: cpu.snapshot(pids) for name, pids in _groups(system).items()}
            self.wait_for(
                completed, base + sc.preload, time.monotonic() + self.limits.drain_cap_s, system
            )
            res.drain_s = round(time.monotonic() - started, 2)
            drained = completed.value - first_count
            # listed again: backends and processes started during the drain count too
            for name, pids in _groups(system).items():
                ms = cpu.ms_per(before.get(name, {}), cpu.snapshot(pids), drained)
                res.drain_cpu_ms[name] = None if ms is None else round(ms, 4)
            done = self.report(collector, phase)
            if not done:
                raise BenchError(f"{res.system}: the collector reported no document of this phase")
            res.docs = len(done)
            first = min(c[2] for c in done)
            last = max(c[2] for c in done)
            if res.system not in CEILINGS:
                expected = len(done) * sc.recipients
                rows, at = self.wait_committed(phase, expected)
                res.rows_committed = rows
                if rows < expected:
                    res.notes.append(f"only {rows} of {expected} delivery rows committed")
                if at > last:
                    res.commit_lag_ms = round((at - last) * 1000, 1)
                    last = at
            rate = throughput(len(done), first, last)
            res.docs_per_s = _r(rate)
            if rate is not None:
                res.mb_per_s = _r(rate * body_bytes / MB)
                res.copies_per_s = _r(rate * sc.recipients)
        finally:
            peak = system.stop()
            self.peak_rss = max(self.peak_rss, system.peak_rss)
            res.purged = self.reset(collector)
        return peak

    def reset(self, collector: Worker) -> int:
        """With the system stopped (its unacked messages handed back): empty the outboxes, let
        the inboxes drain, forget stragglers. Returns how many submissions were purged."""
        purged = self.env.purge(self.env.outboxes)
        time.sleep(self.limits.settle_s)
        self.report(collector, -1)
        return purged

    def latency_phase(
        self,
        res: PhaseResult,
        sc: Scenario,
        publisher: Worker,
        collector: Worker,
        completed: Synchronized[int],
    ) -> int:
        """Offer half the measured throughput (or ``paced_rate``) to a freshly started system;
        returns its peak PSS."""
        assert res.docs_per_s
        rate = self.paced_rate or res.docs_per_s / 2
        res.offered_rate = round(rate, 2)
        offered = self.offer(res.system, sc, rate, publisher, collector, completed)
        res.latency = offered.summary
        res.latency_timeline = offered.timeline
        res.latency_cores = offered.cores
        res.latency_sent = offered.sent
        res.notes.extend(offered.notes)
        return offered.peak_pss

    def offer(
        self,
        system_name: str,
        sc: Scenario,
        rate: float,
        publisher: Worker,
        collector: Worker,
        completed: Synchronized[int],
    ) -> Offered:
        """Offer ``rate`` documents/s for ``paced_s`` to a freshly started system."""
        lim = self.limits
        count = max(lim.paced_min_docs, int(rate * lim.paced_s))
        if count / rate > 3 * lim.paced_s:
            count = max(2, int(rate * 3 * lim.paced_s))
        notes: list[str] = []
        profile_as = f"{system_name}-{sc.name}-at-{rate:.0f}" if system_name == "relay" else None
        system = self.start_system(system_name, sc, profile_as)
        try:
            # One warm-up document per sender (the publisher takes them in turn) proves the
            # system consumes every outbox before the clock matters: a relay with several
            # worker processes is ready when the last of them is.
            warm = self.next_phase()
            base = completed.value
            senders = len(self.env.senders)
            self.publish(publisher, warm, senders, None, timeout=60)
            if not self.wait_for(completed, base + senders, time.monotonic() + STARTUP_S, system):
                raise BenchError(f"{system_name}: warm-up documents not delivered")
            _settled, failed = self.settle_io()
            if failed:
                notes.append(failed)
            phase = self.next_phase()
            base = completed.value
            # with the simulated adapters and the inbox collector: the load, not the system
            groups = {**_groups(system), "bench": [publisher.pid, collector.pid]}
            before = {name: cpu.snapshot(pids) for name, pids in groups.items()}
            started = time.monotonic()
            self.publish(publisher, phase, count, rate, timeout=count / rate + 120)
            if not self.wait_for(completed, base + count, time.monotonic() + 60, system):
                notes.append(f"latency at {rate:.1f}/s: not every document arrived within 60 s")
            seconds = time.monotonic() - started
            cores = {}
            for name, pids in groups.items():
                use = cpu.core_use(before[name], cpu.snapshot(pids), seconds)
                if use is not None:
                    cores[name] = use.as_dict()
            done = self.report(collector, phase)
            summary = summarize_latencies([c[2] - c[1] for c in done])
        finally:
            peak = system.stop()
            self.peak_rss = max(self.peak_rss, system.peak_rss)
            self.reset(collector)
        return Offered(
            summary=summary.as_dict() if summary else None,
            timeline=latency_timeline([(c[1], c[2]) for c in done]),
            cores=cores,
            sent=count,
            notes=notes,
            peak_pss=peak,
        )

    def ceiling_at_relay_load(
        self,
        sc: Scenario,
        results: list[PhaseResult],
        publisher: Worker,
        collector: Worker,
        completed: Synchronized[int],
    ) -> None:
        """Each ceiling's latency at the relay's half-load rate: p99s compared at one load."""
        by = {r.system: r for r in results}
        relay = by.get("relay")
        if relay is None or not relay.offered_rate:
            return
        load = relay.offered_rate
        for name in CEILINGS:
            ceiling = by.get(name)
            if ceiling is None:
                continue
            if ceiling.offered_rate == load:  # --paced-rate: measured at that load already
                ceiling.latency_at_relay_load = ceiling.latency
                ceiling.latency_at_relay_load_timeline = ceiling.latency_timeline
                ceiling.latency_at_relay_load_cores = ceiling.latency_cores
                continue
            print(f"  {sc.name}: {name} at the relay's load ({load}/s) ...", flush=True)
            try:
                offered = self.offer(name, sc, load, publisher, collector, completed)
            except BenchError as e:
                ceiling.notes.append(f"at the relay's load: {e}")
                continue
            ceiling.latency_at_relay_load = offered.summary
            ceiling.latency_at_relay_load_timeline = offered.timeline
            ceiling.latency_at_relay_load_cores = offered.cores
            ceiling.notes.extend(offered.notes)
            lat = offered.summary or {}
            print(
                f"    p50/p95/p99 {lat.get('p50_ms')}/{lat.get('p95_ms')}/{lat.get('p99_ms')} ms"
                f"{_slowest(offered.timeline)}{cpu.describe(offered.cores)}"
            )

    def run_scenario(self, sc: Scenario, systems: list[str]) -> list[PhaseResult]:
        templates = self.templates(sc)
        body_bytes = next(iter(templates.values())).size
        collector, publisher, completed = self.start_helpers(sc, templates)
        results = []
        try:
            for name in systems:
                print(f"  {sc.name}: {name} ...", flush=True)
                res = self.measure(sc, name, publisher, collector, completed, body_bytes)
                print(f"    {_line(res)}", flush=True)
                results.append(res)
            self.ceiling_at_relay_load(sc, results, publisher, collector, completed)
        finally:
            publisher.stop(("stop",))
            collector.stop(("stop",))
        return results


def _wait_for_exec(pid: int, timeout: float = 10.0) -> None:
    """With several workers, ``lienthong relay run`` execs the slim parent
    (``lienthong.relay_workers``) at once; wait until it has, so py-spy attaches to the
    process that stays."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            cmdline = " ".join(psutil.Process(pid).cmdline())
        except psutil.Error:
            return
        if "lienthong.relay_workers" in cmdline:
            return
        time.sleep(0.05)


def run_publisher_entry(*args: Any) -> None:
    """Spawn target (imported lazily so the runner imports stay light)."""
    from tests.bench.publisher import run_publisher

    run_publisher(*args)


def _groups(system: System) -> dict[str, list[int]]:
    """The processes whose CPU a phase reports, by group: the system's tree as it is now,
    RabbitMQ, PostgreSQL (tests.bench.cpu)."""
    return {system.name: cpu.tree(system.sampler.pid), **cpu.services()}


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


def median_drain(drains: list[PhaseResult]) -> PhaseResult:
    """The drain with the median throughput (the lower middle of an even number), carrying
    every drain's rate and notes; one without a rate counts as the slowest."""
    ranked = sorted(drains, key=lambda r: r.docs_per_s or 0.0)
    median = ranked[(len(ranked) - 1) // 2]
    if len(drains) > 1:
        median.drain_rates = [r.docs_per_s for r in drains]
        median.notes = [n for r in drains for n in r.notes]
    return median


def _line(r: PhaseResult) -> str:
    lat = r.latency or {}
    parts = [
        f"{r.docs} docs",
        f"{r.docs_per_s} docs/s"
        + (f" (median of {', '.join(map(str, r.drain_rates))})" if r.drain_rates else ""),
        f"{r.mb_per_s} MB/s{cpu.describe_ms(r.drain_cpu_ms)}",
        f"p50/p95/p99 {lat.get('p50_ms')}/{lat.get('p95_ms')}/{lat.get('p99_ms')} ms"
        f" at {r.offered_rate}/s{_slowest(r.latency_timeline)}{cpu.describe(r.latency_cores)}",
        f"peak PSS {r.peak_pss_mb} MB (RSS summed {r.peak_rss_mb} MB)",
        f"{r.seconds} s (drain {r.drain_s} s)",
    ]
    if r.error:
        parts.append(f"ERROR {r.error.splitlines()[0]}")
    return ", ".join(parts)


def _slowest(timeline: list[dict[str, float | int]]) -> str:
    """`` (slowest second: …)`` for a phase line: whether its p99 is a stall or queueing."""
    worst = slowest_second(timeline)
    if worst is None or len(timeline) < 2:
        return ""
    return (
        f" (slowest second {worst['at_s']:g} s in: {worst['count']} docs,"
        f" p50 {worst['p50_ms']} ms, max {worst['max_ms']} ms)"
    )
