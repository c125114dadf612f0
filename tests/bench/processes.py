"""The processes of a run: spawned Python workers, the relay subprocess, a memory sampler."""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import psutil

CTX = mp.get_context("spawn")


class BenchError(RuntimeError):
    """A benchmark step failed; the message says which and why."""


def expect(conn: Connection, kind: str, timeout: float, what: str) -> tuple[Any, ...]:
    """The next message from a worker, which must be ``kind``; an ``error`` message raises."""
    if not conn.poll(timeout):
        raise BenchError(f"{what}: no {kind!r} within {timeout:.0f}s")
    try:
        msg: tuple[Any, ...] = conn.recv()
    except EOFError as e:
        raise BenchError(f"{what}: the process ended without a word") from e
    if msg[0] == "error":
        raise BenchError(f"{what}: {msg[1]}")
    if msg[0] != kind:
        raise BenchError(f"{what}: expected {kind!r}, got {msg[0]!r}")
    return msg


class MemorySampler:
    """Samples a process tree's memory on a thread (the process and all its children).

    The figure is **PSS summed** over the tree (proportional set size: a page shared by N
    processes counts 1/N in each), so the relay's worker processes, which share the
    interpreter's and libraries' pages, are not counted several times as RSS summed would be.
    RSS summed (and the kernel's per-process ``VmHWM``) is kept beside it for comparison.
    """

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = 0  # PSS summed
        self.peak_rss = 0  # RSS summed
        self.last = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"memory-{pid}", daemon=True)

    def start(self) -> MemorySampler:
        self._thread.start()
        return self

    def sample(self) -> int:
        """PSS summed over the tree now (bytes)."""
        try:
            p = psutil.Process(self.pid)
            procs = [p, *p.children(recursive=True)]
        except psutil.Error:
            return self.last
        pss = rss = 0
        for proc in procs:
            with _quiet():
                full = proc.memory_full_info()  # reads smaps_rollup
                pss += full.pss
                rss += full.rss
        if pss == 0:
            return self.last
        self.last = pss
        self.peak = max(self.peak, pss)
        self.peak_rss = max(self.peak_rss, rss)
        return pss

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def stop(self) -> int:
        """Stop sampling; returns the peak PSS (``peak_rss`` also holds the kernel's RSS
        high-water mark of the top process where readable)."""
        self.sample()
        self.peak_rss = max(self.peak_rss, _vm_hwm(self.pid))
        self._stop.set()
        self._thread.join(timeout=2)
        return self.peak


class _quiet:
    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> bool:
        return exc_type is not None and issubclass(exc_type, psutil.Error)


def _vm_hwm(pid: int) -> int:
    """Peak RSS the kernel recorded for ``pid`` (Linux ``VmHWM``), 0 if unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class Worker:
    """A spawned Python process that reports over a pipe."""

    def __init__(self, name: str, target: Callable[..., None], *args: Any) -> None:
        self.name = name
        self.conn, child = CTX.Pipe()
        self.process: BaseProcess = CTX.Process(
            target=target, args=(*args, child), name=name, daemon=True
        )

    def start(self, timeout: float = 200) -> Worker:
        self.process.start()
        expect(self.conn, "ready", timeout, self.name)
        return self

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process.is_alive()

    def stop(self, graceful: tuple[Any, ...] | None = None, timeout: float = 15) -> None:
        """Ask it to stop (a pipe message, else SIGTERM), then kill it if it does not."""
        if self.process.is_alive():
            if graceful is not None:
                with _ignore_broken_pipe():
                    self.conn.send(graceful)
            else:
                self.process.terminate()
            self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
        self.conn.close()


class _ignore_broken_pipe:
    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> bool:
        return exc_type is not None and issubclass(exc_type, (BrokenPipeError, OSError))


def lienthong_command() -> list[str]:
    """The ``lienthong`` console script next to this interpreter (the venv's)."""
    script = Path(sys.executable).parent / "lienthong"
    if script.exists():
        return [str(script)]
    found = shutil.which("lienthong")
    if found:
        return [found]
    return [sys.executable, "-m", "lienthong.cli"]


class RelayProcess:
    """``lienthong relay run`` as a subprocess, its output to a log file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.popen = subprocess.Popen(
            [*lienthong_command(), "relay", "run"],
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.pid = self.popen.pid
        self.started = time.monotonic()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def failure(self) -> str:
        """Why it is not running, with the end of its log."""
        tail = self.log_path.read_text(errors="replace")[-2000:]
        return f"relay exited with status {self.popen.returncode}; log tail:\n{tail}"

    def stop(self, timeout: float = 20) -> int | None:
        """SIGTERM (DESIGN §5: stops cleanly), then SIGKILL after ``timeout``."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self._log.close()
        return self.popen.returncode
