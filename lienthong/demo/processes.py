"""The demo's child processes: the relay and the adapters, each a real ``lienthong`` process.

Every child runs in a session of its own, so a Ctrl-C in the terminal reaches only the demo,
which then stops its children in order (SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import structlog

from lienthong.demo.errors import DemoFailed

log = structlog.get_logger()

#: prctl(2) option: the signal a process gets when its parent dies.
PR_SET_PDEATHSIG = 1


def lienthong_command() -> list[str]:
    """How to run the ``lienthong`` console script of the running interpreter's environment."""
    script = Path(sys.executable).parent / "lienthong"
    if script.exists():
        return [str(script)]
    found = shutil.which("lienthong")
    if found:
        return [found]
    return [sys.executable, "-c", "from lienthong.cli import main; main()"]


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the demo dies, even by SIGKILL (Linux)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text("utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join("    " + line for line in text.splitlines()[-lines:]) or "    (empty log)"


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]


@dataclass
class Supervisor:
    """Starts ``lienthong`` subcommands with the demo's environment and stops them all."""

    env: dict[str, str]
    logs: Path
    children: list[Child] = field(default_factory=list)

    def run(self, name: str, commands: list[list[str]], timeout: float = 90.0) -> None:
        """Run short ``lienthong`` commands side by side to completion; raise if one fails.

        Their output goes to ``logs/<name>.log``. They must not depend on each other.
        """
        self.logs.mkdir(parents=True, exist_ok=True)
        started = [
            (
                args,
                subprocess.Popen(
                    [*lienthong_command(), *args],
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                ),
            )
            for args in commands
        ]
        deadline = time.monotonic() + timeout
        failures: list[str] = []
        with (self.logs / f"{name}.log").open("a", encoding="utf-8") as log_file:
            for args, process in started:
                command = "lienthong " + " ".join(args)
                try:
                    out, _ = process.communicate(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    process.kill()
                    out, _ = process.communicate()
                    failures.append(f"`{command}` did not finish in {timeout:.0f}s")
                    continue
                text = out.decode("utf-8", errors="replace")
                log_file.write(f"$ {command}\n{text}\n")
                if process.returncode != 0:
                    tail = "\n".join("    " + line for line in text.strip().splitlines()[-10:])
                    failures.append(f"`{command}` failed (exit {process.returncode}):\n{tail}")
        if failures:
            raise DemoFailed("\n".join(failures))

    def start(self, name: str, args: list[str]) -> Child:
        """Start a long-running ``lienthong`` command with its output in ``logs/<name>.log``."""
        self.logs.mkdir(parents=True, exist_ok=True)
        log_path = self.logs / f"{name}.log"
        log_file = log_path.open("ab")
        process = subprocess.Popen(
            [*lienthong_command(), *args],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # A demo killed outright must not leave a relay or adapters running on their own.
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        child = Child(name, process, log_path, log_file)
        self.children.append(child)
        log.debug("demo.process_started", name=name, pid=process.pid)
        return child

    def check_alive(self) -> None:
        """Raise DemoFailed naming the first child that has exited, with its log's tail."""
        for child in self.children:
            code = child.process.poll()
            if code is not None:
                raise DemoFailed(
                    f"{child.name} (pid {child.process.pid}) exited with status {code}; "
                    f"the end of {child.log_path}:\n{log_tail(child.log_path)}"
                )

    def stop_all(self, grace: float = 10.0) -> list[str]:
        """SIGTERM every child still running, SIGKILL what is left after ``grace`` seconds.

        Returns one line per child saying how it ended.
        """
        report: list[str] = []
        for child in self.children:
            if child.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for child in self.children:
            remaining = max(0.1, deadline - time.monotonic())
            try:
                code = child.process.wait(timeout=remaining)
                report.append(f"{child.name} stopped (exit {code})")
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.process.pid, signal.SIGKILL)
                child.process.wait(timeout=5)
                report.append(f"{child.name} did not stop within {grace:.0f}s and was killed")
            child.log_file.close()
        self.children.clear()
        return report
