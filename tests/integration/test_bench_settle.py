"""The bench settles the disk before each measured phase: PostgreSQL checkpoints, the kernel
writes its dirty pages (tests/bench/runner.py, ``Runner.settle_io``)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import cast

from sqlalchemy import Engine, text

from relay.config import Settings
from tests.bench.env import BenchEnv
from tests.bench.runner import Runner
from tests.bench.scenarios import limits


def _requested_checkpoints(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT checkpoints_req FROM pg_stat_bgwriter")).scalar_one())


def _runner(env: Settings, tmp_path: Path, *, settle: bool) -> Runner:
    bench_env = cast(BenchEnv, SimpleNamespace(settings=env))
    return Runner(bench_env, limits(quick=True), tmp_path, settle=settle)


def test_settling_makes_a_checkpoint_and_says_how_long_it_took(
    env: Settings, engine: Engine, tmp_path: Path
) -> None:
    runner = _runner(env, tmp_path, settle=True)
    try:
        before = _requested_checkpoints(engine)
        seconds, failed = runner.settle_io()
        assert failed is None
        assert seconds is not None and seconds >= 0
        assert _requested_checkpoints(engine) > before
    finally:
        runner.close()


def test_no_settle_leaves_the_disk_alone(env: Settings, tmp_path: Path) -> None:
    runner = _runner(env, tmp_path, settle=False)
    try:
        assert runner.settle_io() == (None, None)
    finally:
        runner.close()
