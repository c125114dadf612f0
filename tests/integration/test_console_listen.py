"""``lienthong console run`` on an address another process holds: one clear error, exit 1,
and no "lienthong console on …" line announcing a console that never served."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from relay.config import Settings
from tests.relay_support import settings_env

pytestmark = pytest.mark.integration

LIENTHONG = [sys.executable, "-c", "from lienthong.cli import main; main()"]


def test_console_run_on_a_port_in_use_says_so_and_exits_1(env: Settings) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        listen = f"127.0.0.1:{busy.getsockname()[1]}"
        done = subprocess.run(
            [*LIENTHONG, "console", "run", "--listen", listen],
            env=settings_env(env),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1, done.stderr
    assert f"--listen: cannot serve the console on {listen}" in done.stderr, done.stderr
    assert "choose another" in done.stderr
    assert "lienthong console on" not in done.stderr
