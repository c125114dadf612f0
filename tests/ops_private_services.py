"""RabbitMQ nodes and PostgreSQL clusters of a test's own, for tests that stop or reconfigure a
service (the shared ones must never be touched). Ports come from the caller.

``python -m tests.private_services rabbitmq NAME AMQP_PORT DIST_PORT [MGMT_PORT]`` starts a
node by hand (``stop-rabbitmq NAME`` stops and removes it).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
BASE = Path(os.environ.get("TMPDIR", "/tmp")) / "lienthong-private-services"


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_port(port: int, timeout: float, *, open_: bool = True) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(port) == open_:
            return True
        time.sleep(0.3)
    return False


def rabbitmq_available() -> bool:
    return (RABBITMQ_BIN / "rabbitmq-server").exists()


@dataclass
class RabbitNode:
    """A RabbitMQ node named ``<name>@localhost`` with its own dirs under :data:`BASE`."""

    name: str
    amqp_port: int
    dist_port: int
    management_port: int | None = None  # where its management listener is (when enabled)
    management_enabled: bool = True  # False: a fresh install, the plugin never enabled

    @property
    def home(self) -> Path:
        return BASE / f"rabbit-{self.name}"

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/"

    @property
    def management_url(self) -> str:
        return f"http://guest:guest@127.0.0.1:{self.management_port}"

    def env(self) -> dict[str, str]:
        h = self.home
        return {
            **os.environ,
            "HOME": str(h),  # its own Erlang cookie
            "RABBITMQ_NODENAME": f"{self.name}@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(h / "mnesia"),
            "RABBITMQ_LOG_BASE": str(h / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(h / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(h / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(h / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(h / "rabbitmq-env.conf"),
            "RABBITMQ_PID_FILE": str(h / "pid"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    def start(self, timeout: float = 90.0) -> RabbitNode:
        for port in (self.amqp_port, self.dist_port, self.management_port or None):
            if port is not None and port_open(port):
                raise RuntimeError(f"port {port} is already in use; is {self.name} running?")
        h = self.home
        shutil.rmtree(h, ignore_errors=True)
        (h / "log").mkdir(parents=True)
        enabled = self.management_port and self.management_enabled
        plugins = ["rabbitmq_management"] if enabled else []
        (h / "enabled_plugins").write_text(f"[{','.join(plugins)}].\n")
        (h / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{self.amqp_port}\n")
        # The management listener in advanced.config: accepted even while the plugin is off
        # (rabbitmq.conf's management.* keys are not), so enabling it later uses this port.
        port = self.management_port or 15672
        listener = f'[{{port, {port}}}, {{ip, "127.0.0.1"}}]'
        (h / "advanced.config").write_text(
            f"[{{rabbitmq_management, [{{tcp_config, {listener}}}]}}].\n"
        )
        (h / "rabbitmq-env.conf").write_text("")
        subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmq-server"), "-detached"],
            env=self.env(),
            check=True,
            capture_output=True,
        )
        self.ctl("wait", str(h / "pid"), "--timeout", str(int(timeout)))
        if not wait_port(self.amqp_port, timeout):
            raise RuntimeError(f"RabbitMQ node {self.name} did not open port {self.amqp_port}")
        if enabled and self.management_port and not wait_port(self.management_port, timeout):
            raise RuntimeError(f"management of {self.name} did not open {self.management_port}")
        return self

    def ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", f"{self.name}@localhost", *args],
            env=self.env(),
            check=check,
            capture_output=True,
            text=True,
        )

    def plugins(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmq-plugins"), "-n", f"{self.name}@localhost", *args],
            env=self.env(),
            check=True,
            capture_output=True,
            text=True,
        )

    def stop(self) -> None:
        self.ctl("stop", check=False)
        wait_port(self.amqp_port, 30, open_=False)
        shutil.rmtree(self.home, ignore_errors=True)


@dataclass
class PostgresCluster:
    """``pg_createcluster VERSION NAME --port P`` (Debian's postgresql-common); trust auth."""

    name: str
    port: int
    version: str = ""

    def __post_init__(self) -> None:
        if not self.version:
            versions = sorted(
                os.listdir("/etc/postgresql"), key=lambda v: [int(x) for x in v.split(".")]
            )
            self.version = versions[-1]

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(cmd), check=check, capture_output=True, text=True)

    def create(self) -> PostgresCluster:
        if port_open(self.port):
            raise RuntimeError(f"port {self.port} is already in use")
        self.drop()
        self._run(
            "pg_createcluster",
            self.version,
            self.name,
            "--port",
            str(self.port),
            "--",
            "--auth=trust",
        )
        self.start()
        return self

    def start(self) -> None:
        self._run("pg_ctlcluster", "--skip-systemctl-redirect", self.version, self.name, "start")
        if not wait_port(self.port, 30):
            raise RuntimeError(f"PostgreSQL cluster {self.name} did not open port {self.port}")

    def stop(self) -> None:
        self._run(
            "pg_ctlcluster",
            "--skip-systemctl-redirect",
            self.version,
            self.name,
            "stop",
            "-m",
            "fast",
            check=False,
        )
        wait_port(self.port, 30, open_=False)

    def drop(self) -> None:
        self._run("pg_dropcluster", "--stop", self.version, self.name, check=False)


def postgres_available() -> bool:
    return shutil.which("pg_createcluster") is not None and Path("/etc/postgresql").is_dir()


def main(argv: list[str]) -> None:
    if argv[:1] == ["rabbitmq"]:
        name, amqp, dist, *mgmt = argv[1:]
        node = RabbitNode(name, int(amqp), int(dist), int(mgmt[0]) if mgmt else None).start()
        print(f"started {node.name}: {node.amqp_url}" + (f" {node.management_url}" if mgmt else ""))
    elif argv[:1] == ["stop-rabbitmq"]:
        RabbitNode(argv[1], 0, 0).stop()
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
