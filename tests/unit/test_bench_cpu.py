"""The bench's run-queue accounting (tests.bench.cpu): who had the cores in a phase, who waited."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.bench import cpu


def _thread(proc: Path, pid: int, tid: int, ran: int, waited: int, slices: int) -> None:
    d = proc / str(pid) / "task" / str(tid)
    d.mkdir(parents=True)
    (d / "schedstat").write_text(f"{ran} {waited} {slices}\n")


def test_a_snapshot_reads_every_thread_of_each_process_and_skips_what_is_gone(
    tmp_path: Path,
) -> None:
    _thread(tmp_path, 10, 10, 5_000, 700, 3)
    _thread(tmp_path, 10, 11, 9_000, 100, 4)
    (tmp_path / "12" / "task" / "12").mkdir(parents=True)  # no schedstat (a kernel without it)
    assert cpu.snapshot([10, 11, 12], proc=tmp_path) == {
        (10, 10): (5_000, 700, 3),
        (10, 11): (9_000, 100, 4),
    }


def test_this_process_threads_are_read_from_the_real_proc() -> None:
    shot = cpu.snapshot([os.getpid()])
    if not shot:
        pytest.skip("no /proc/<pid>/task/<tid>/schedstat on this kernel")
    assert (os.getpid(), os.getpid()) in shot
    ran, _, slices = shot[(os.getpid(), os.getpid())]
    assert ran > 0 and slices > 0


def test_core_use_sums_the_threads_present_in_both_snapshots_over_the_phase() -> None:
    before = {(1, 1): (0, 0, 0), (1, 2): (1_000_000_000, 0, 10), (2, 2): (0, 0, 0)}
    after = {
        (1, 1): (1_000_000_000, 3_000_000_000, 1_000),  # ran 1 s, waited 3 s, 1,000 slices
        (1, 2): (2_000_000_000, 1_000_000_000, 1_010),  # ran 1 s more, waited 1 s, 1,000 slices
        (3, 3): (9_000_000_000, 9_000_000_000, 9),  # started during the phase: left out
    }
    use = cpu.core_use(before, after, seconds=2.0)
    assert use == cpu.CoreUse(ran=1.0, waited=2.0, wait_per_slice_ms=2.0)
    assert use.as_dict() == {"ran_cores": 1.0, "waited_cores": 2.0, "wait_per_slice_ms": 2.0}
    assert cpu.core_use(before, {(9, 9): (1, 1, 1)}, seconds=2.0) is None
    assert cpu.core_use(before, after, seconds=0) is None


def test_the_phase_line_names_each_group_its_cores_and_its_wait() -> None:
    line = cpu.describe(
        {
            "relay": {"ran_cores": 0.58, "waited_cores": 3.9, "wait_per_slice_ms": 1.351},
            "postgresql": {"ran_cores": 0.2, "waited_cores": 0.0, "wait_per_slice_ms": None},
        }
    )
    assert line == (
        "; cores: relay 0.58 (waited 3.90, 1.35 ms a slice), postgresql 0.20 (waited 0.00)"
    )
    assert cpu.describe({}) == ""


def test_cpu_per_document_is_the_time_run_between_the_snapshots_over_the_count() -> None:
    before = {(1, 1): (0, 0, 0), (1, 2): (500_000_000, 0, 1)}
    after = {
        (1, 1): (1_500_000_000, 9_000_000_000, 9),  # ran 1.5 s (waiting does not count)
        (1, 2): (1_000_000_000, 0, 2),  # ran 0.5 s
    }
    assert cpu.ms_per(before, after, 10_000) == pytest.approx(0.2)  # 2 s over 10,000 documents
    started_meanwhile = {**after, (2, 2): (1_000_000_000, 0, 1)}  # a backend connected: 1 s
    assert cpu.ms_per(before, started_meanwhile, 10_000) == pytest.approx(0.3)
    assert cpu.ms_per(before, after, 0) is None
    assert cpu.ms_per(before, {}, 10) is None
    line = cpu.describe_ms({"relay": 0.11349, "rabbitmq": 0.16, "postgresql": None})
    assert line == "; CPU per document: relay 0.113, rabbitmq 0.160 ms"
    assert cpu.describe_ms({}) == ""
