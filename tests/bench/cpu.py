"""Who had the cores during a latency phase, and who waited for one; CPU per document drained.

Linux keeps, for every thread, the time it ran, the time it spent runnable in a run queue
waiting for a core, and how many times it was put on a core (``/proc/<pid>/task/<tid>/schedstat``).
Two snapshots around a phase give, per group of processes (the system measured, RabbitMQ,
PostgreSQL), the cores they used and the cores' worth of time their threads waited: on a
machine whose cores are all busy, a latency of hundreds of milliseconds is mostly that wait.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil

#: (pid, tid) -> (ns running, ns waiting in a run queue, times put on a core)
Snapshot = dict[tuple[int, int], tuple[int, int, int]]


def snapshot(pids: Iterable[int], proc: Path = Path("/proc")) -> Snapshot:
    """Every thread of ``pids`` as the kernel counts it now; processes or threads gone
    meanwhile, or a kernel without schedstat, are left out."""
    out: Snapshot = {}
    for pid in pids:
        try:
            tids = [int(t.name) for t in (proc / str(pid) / "task").iterdir()]
        except OSError:
            continue
        for tid in tids:
            try:
                fields = (proc / str(pid) / "task" / str(tid) / "schedstat").read_text().split()
                out[(pid, tid)] = (int(fields[0]), int(fields[1]), int(fields[2]))
            except (OSError, ValueError, IndexError):
                continue
    return out


@dataclass(frozen=True)
class CoreUse:
    """A group's threads over a phase, in cores (1.0 = one core for the whole phase)."""

    ran: float
    waited: float  # summed over threads: 2.0 = two threads waiting all along
    wait_per_slice_ms: float | None  # the mean wait each time one of them was put on a core

    def as_dict(self) -> dict[str, float | None]:
        return {
            "ran_cores": round(self.ran, 3),
            "waited_cores": round(self.waited, 3),
            "wait_per_slice_ms": None
            if self.wait_per_slice_ms is None
            else round(self.wait_per_slice_ms, 3),
        }


def core_use(before: Snapshot, after: Snapshot, seconds: float) -> CoreUse | None:
    """What the threads present in both snapshots did in between; None when none was or no
    time passed."""
    if seconds <= 0:
        return None
    ran = waited = slices = 0
    seen = False
    for key, (run1, wait1, n1) in after.items():
        start = before.get(key)
        if start is None:
            continue
        seen = True
        ran += run1 - start[0]
        waited += wait1 - start[1]
        slices += n1 - start[2]
    if not seen:
        return None
    return CoreUse(
        ran=ran / 1e9 / seconds,
        waited=waited / 1e9 / seconds,
        wait_per_slice_ms=(waited / 1e6 / slices) if slices else None,
    )


def ms_per(before: Snapshot, after: Snapshot, count: int) -> float | None:
    """The CPU used between the snapshots, in milliseconds per one of ``count`` things
    (documents drained); None when ``after`` is empty or ``count`` is 0. A thread only in
    ``after`` started in between and counts whole (a PostgreSQL backend the system connected
    meanwhile); one that ended in between is not seen (a connection the relay closed after a
    batch of 12 MiB or more, which the default intake bound does not make)."""
    if not after or count <= 0:
        return None
    ran = sum(run - before.get(key, (0, 0, 0))[0] for key, (run, _, _) in after.items())
    return ran / 1e6 / count


def describe_ms(per_doc: Mapping[str, float | None]) -> str:
    """``; CPU per document: relay 0.113 ms, …`` for a drain's line."""
    parts = [f"{name} {ms:.3f}" for name, ms in per_doc.items() if ms is not None]
    return f"; CPU per document: {', '.join(parts)} ms" if parts else ""


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants now (the relay's parent and its worker processes)."""
    try:
        p = psutil.Process(pid)
        return [pid, *(c.pid for c in p.children(recursive=True))]
    except psutil.Error:
        return []


def services() -> dict[str, list[int]]:
    """The local broker's and database's processes by name (RabbitMQ runs as ``beam.smp``;
    every PostgreSQL backend is a ``postgres`` process). Empty where they run elsewhere."""
    found: dict[str, list[int]] = {"rabbitmq": [], "postgresql": []}
    for p in psutil.process_iter(["name"]):
        name = p.info.get("name") or ""
        if name.startswith("beam"):
            found["rabbitmq"].append(p.pid)
        elif name == "postgres":
            found["postgresql"].append(p.pid)
    return found


def describe(use: Mapping[str, dict[str, float | None]]) -> str:
    """`` cores: relay 0.58 (waited 3.9, 1.35 ms a slice), rabbitmq …`` for a phase line."""
    parts = []
    for name, u in use.items():
        per = u.get("wait_per_slice_ms")
        per_text = "" if per is None else f", {per:.2f} ms a slice"
        parts.append(f"{name} {u['ran_cores']:.2f} (waited {u['waited_cores']:.2f}{per_text})")
    return f"; cores: {', '.join(parts)}" if parts else ""
