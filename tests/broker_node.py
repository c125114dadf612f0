"""A RabbitMQ node of a test's own (its name, ports, mnesia and log folders), never the shared
one: for tests that need another broker configuration (TLS) or break the broker.

Ports stay in the range given to these tests (AMQP 5691–5694, TLS 5695, management
15691–15695, distribution 25691–25695). The node is stopped and its folders removed on exit.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
CTL = Path("/usr/lib/rabbitmq/bin/rabbitmqctl")


@dataclass(frozen=True)
class Node:
    name: str
    amqp_port: int
    management_port: int
    env: dict[str, str]

    @property
    def management_url(self) -> str:
        return f"http://guest:guest@127.0.0.1:{self.management_port}"

    def ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(CTL), "-n", self.name, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@contextlib.contextmanager
def own_node(
    workdir: Path,
    *,
    name: str,
    amqp_port: int,
    management_port: int,
    dist_port: int,
    extra_config: str = "",
    boot_seconds: float = 120,
) -> Iterator[Node]:
    """Start a node (``rabbitmq-server -detached``), wait for its management API, stop it."""
    if not SERVER.exists():
        pytest.skip(f"{SERVER} is not installed (apt-get install rabbitmq-server)")
    for port in (amqp_port, management_port, dist_port):
        if not _port_free(port):
            pytest.skip(f"port {port} is taken: another run of this test is using it")
    base = workdir / name.split("@")[0]
    for sub in ("mnesia", "log", "home"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    (base / "rabbitmq.conf").write_text(
        f"listeners.tcp.default = 127.0.0.1:{amqp_port}\n"
        f"management.tcp.port = {management_port}\n"
        "management.tcp.ip = 127.0.0.1\n"
        "loopback_users.guest = true\n" + extra_config
    )
    (base / "enabled_plugins").write_text("[rabbitmq_management].\n")
    env = {
        **os.environ,
        "HOME": str(base / "home"),
        "RABBITMQ_NODENAME": name,
        "RABBITMQ_NODE_PORT": str(amqp_port),
        "RABBITMQ_DIST_PORT": str(dist_port),
        "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
        "RABBITMQ_LOG_BASE": str(base / "log"),
        "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
        "RABBITMQ_PID_FILE": str(base / "pid"),
    }
    node = Node(name, amqp_port, management_port, env)
    subprocess.run([str(SERVER), "-detached"], env=env, check=True, timeout=60)
    try:
        deadline = time.monotonic() + boot_seconds
        while True:
            try:
                if httpx.get(
                    f"http://127.0.0.1:{management_port}/api/overview",
                    auth=("guest", "guest"),
                    timeout=5,
                ).is_success:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                logs = "\n".join(p.read_text()[-2000:] for p in (base / "log").glob("*.log"))
                raise AssertionError(f"RabbitMQ node {name} did not start:\n{logs}")
            time.sleep(1)
        yield node
    finally:
        node.ctl("stop", timeout=120)
        deadline = time.monotonic() + 60
        while not _port_free(amqp_port) and time.monotonic() < deadline:
            time.sleep(0.5)
        shutil.rmtree(base, ignore_errors=True)
