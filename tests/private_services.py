"""Services of a test's own, for tests that stop, kill or restart them (never the shared ones).

- :class:`RabbitNode` — a RabbitMQ node (``RABBITMQ_NODENAME``, its own AMQP, management and
  Erlang distribution ports, mnesia and log dirs under a temporary folder, the management plugin
  on, or off as on a fresh install); :func:`rabbit_node` starts one, :func:`rabbit_cluster` starts
  several and joins them with ``rabbitmqctl join_cluster``. The nodes run as the current user
  with its ``~/.erlang.cookie``.
- :class:`PostgresCluster` — a PostgreSQL cluster made with ``pg_createcluster`` on a port of its
  own, trust authentication on loopback; :func:`postgres_cluster` creates and drops it.
- :class:`FailoverProxy` — a TCP forwarder on a fixed port that sends each new connection to the
  first of several targets that accepts it (what a load balancer in front of a cluster does).

Everything is removed on exit, also when the test fails. Callers pass the ports (a test suite
keeps to the ports it was given; see ``tests/chaos/ports.py``).

``python -m tests.private_services rabbitmq NAME AMQP_PORT MGMT_PORT DIST_PORT`` starts a node by
hand (``stop-rabbitmq NAME`` stops and removes it).
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import psutil

#: Where Debian puts RabbitMQ's own scripts; ``/usr/sbin/rabbitmq*`` would switch to the
#: ``rabbitmq`` user (another cookie, another home) when started as root.
RABBITMQ_BIN = Path(os.environ.get("RABBITMQ_BIN", "/usr/lib/rabbitmq/bin"))
PG_VERSION = os.environ.get("LIENTHONG_TEST_PG_VERSION", "15")
#: Where nodes started by hand (``python -m tests.private_services``) keep their folders.
BY_HAND = Path(os.environ.get("TMPDIR", "/tmp")) / "lienthong-private-services"


class ServiceError(RuntimeError):
    """A private service did not start or stop; the message says which and where its log is."""


def rabbitmq_available() -> bool:
    return (RABBITMQ_BIN / "rabbitmq-server").exists()


def postgres_available() -> bool:
    return shutil.which("pg_createcluster") is not None


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def _wait(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise ServiceError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


# -- RabbitMQ -----------------------------------------------------------------------------


@dataclass
class RabbitNode:
    """One RabbitMQ node of the test's own. ``start()``, ``stop()`` (graceful), ``kill()``
    (SIGKILL of the whole node), ``start()`` again keeps its data (a restart).

    ``management_enabled=False`` is a fresh install: the plugin is off, its listener configured
    on ``management_port`` for when someone enables it (``plugins("enable", …)``)."""

    name: str  # e.g. "chaos1": the node is chaos1@localhost
    amqp_port: int
    management_port: int
    dist_port: int
    base: Path
    management_enabled: bool = True
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def node(self) -> str:
        return f"{self.name}@localhost"

    @property
    def log_path(self) -> Path:
        return self.base / "stdout.log"

    def amqp_url(self, vhost: str = "/", user: str = "guest", password: str = "guest") -> str:
        credentials = f"{quote(user, safe='')}:{quote(password, safe='')}"
        return f"amqp://{credentials}@127.0.0.1:{self.amqp_port}/{quote(vhost, safe='')}"

    @property
    def management_url(self) -> str:
        return f"http://guest:guest@127.0.0.1:{self.management_port}"

    def env(self) -> dict[str, str]:
        """The environment RabbitMQ's scripts need to find this node and its files."""
        env = dict(os.environ)
        env.update(
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.amqp_port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_CONFIG_FILE=str(self.base / "rabbitmq.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(self.base / "advanced.config"),
            RABBITMQ_CONF_ENV_FILE=str(self.base / "rabbitmq-env.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.base / "enabled_plugins"),
            RABBITMQ_MNESIA_BASE=str(self.base / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.base / "log"),
            RABBITMQ_PID_FILE=str(self.base / "node.pid"),
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
            ERL_EPMD_ADDRESS="127.0.0.1",
        )
        return env

    def _write_config(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        listener = f'[{{port, {self.management_port}}}, {{ip, "127.0.0.1"}}]'
        (self.base / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{self.amqp_port}\n"
            # the tests connect as guest over loopback only
            "loopback_users.guest = true\n"
            # quorum queues: a killed node's peers notice within a few seconds
            "net_ticktime = 10\n"
        )
        # The management listener in advanced.config: accepted while the plugin is off too
        # (rabbitmq.conf's management.* keys are not), so enabling it later uses this port.
        (self.base / "advanced.config").write_text(
            f"[{{rabbitmq_management, [{{tcp_config, {listener}}}]}}].\n"
        )
        (self.base / "rabbitmq-env.conf").write_text("")
        plugins = "rabbitmq_management" if self.management_enabled else ""
        (self.base / "enabled_plugins").write_text(f"[{plugins}].\n")

    def start(self, *, wait: bool = True, timeout: float = 120.0) -> RabbitNode:
        if self.proc is not None and self.proc.poll() is None:
            raise ServiceError(f"{self.node} is already running")

        def ports_free() -> bool:
            return not (port_open(self.amqp_port) or port_open(self.management_port))

        # A node of the same name stopped a moment ago may hold its listeners a few seconds more.
        with contextlib.suppress(ServiceError):
            _wait(ports_free, 20.0, "the ports to be free")
        if not ports_free():
            raise ServiceError(
                f"port {self.amqp_port} or {self.management_port} is taken: another node "
                f"(a previous run not cleaned up?) listens there"
            )
        self._write_config()
        log = self.log_path.open("ab")
        try:
            self.proc = subprocess.Popen(
                [str(RABBITMQ_BIN / "rabbitmq-server")],
                env=self.env(),
                cwd=self.base,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: kill() reaches every child
            )
        finally:
            log.close()
        if wait:
            self.wait_started(timeout)
        return self

    def wait_started(self, timeout: float = 120.0) -> None:
        def up() -> bool:
            if self.proc is None or self.proc.poll() is not None:
                raise ServiceError(f"{self.node} exited; see {self.log_path}:\n{self.log_tail()}")
            management = port_open(self.management_port) or not self.management_enabled
            return port_open(self.amqp_port) and management

        _wait(up, timeout, f"{self.node} to listen on {self.amqp_port}")

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ctl(self, *args: str, timeout: float = 120.0) -> str:
        """``rabbitmqctl -n NODE args…``; its output, or ServiceError."""
        done = subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.node, *args],
            env=self.env(),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        out = (done.stdout + done.stderr).decode("utf-8", "replace")
        if done.returncode != 0:
            raise ServiceError(f"rabbitmqctl -n {self.node} {' '.join(args)} failed:\n{out}")
        return out

    def plugins(self, *args: str, timeout: float = 120.0) -> str:
        """``rabbitmq-plugins -n NODE args…``; its output, or ServiceError."""
        done = subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmq-plugins"), "-n", self.node, *args],
            env=self.env(),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        out = (done.stdout + done.stderr).decode("utf-8", "replace")
        if done.returncode != 0:
            raise ServiceError(f"rabbitmq-plugins -n {self.node} {' '.join(args)} failed:\n{out}")
        return out

    def stop(self, timeout: float = 60.0) -> None:
        """A clean shutdown: SIGTERM to the Erlang VM, which RabbitMQ handles like
        ``rabbitmqctl stop`` (the CLI itself takes seconds to start, while traffic goes on)."""
        if not self.running():
            return
        assert self.proc is not None
        for child in psutil.Process(self.proc.pid).children(recursive=True):
            if child.name().startswith("beam"):
                child.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL the node and everything it started (its own process group)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def remove(self) -> None:
        self.kill()
        shutil.rmtree(self.base, ignore_errors=True)


@contextlib.contextmanager
def rabbit_cluster(
    names: Sequence[str],
    amqp_ports: Sequence[int],
    management_ports: Sequence[int],
    dist_ports: Sequence[int],
    *,
    management_enabled: bool = True,
) -> Iterator[list[RabbitNode]]:
    """Nodes ``names[i]`` on the given ports; with more than one, the others join the first.

    The nodes start in parallel (each takes several seconds); all are killed and their folders
    removed on exit.
    """
    top = Path(tempfile.mkdtemp(prefix="lienthong-rabbit-"))
    nodes = [
        RabbitNode(name, amqp, mgmt, dist, top / name, management_enabled)
        for name, amqp, mgmt, dist in zip(
            names, amqp_ports, management_ports, dist_ports, strict=True
        )
    ]
    try:
        for node in nodes:
            node.start(wait=False)
        for node in nodes:
            node.wait_started()
        seed = nodes[0]
        for node in nodes[1:]:
            node.ctl("stop_app")
            node.ctl("join_cluster", seed.node)
            node.ctl("start_app")
        if len(nodes) > 1:
            status = seed.ctl("cluster_status", "--formatter", "json")
            missing = [n.node for n in nodes if n.node not in status]
            if missing:
                raise ServiceError(f"{missing} did not join {seed.node}:\n{status}")
        yield nodes
    finally:
        for node in nodes:
            node.kill()
        shutil.rmtree(top, ignore_errors=True)


@contextlib.contextmanager
def rabbit_node(
    name: str,
    amqp_port: int,
    management_port: int,
    dist_port: int,
    *,
    management_enabled: bool = True,
) -> Iterator[RabbitNode]:
    """One node of the test's own, killed and removed on exit."""
    ports = [amqp_port], [management_port], [dist_port]
    with rabbit_cluster([name], *ports, management_enabled=management_enabled) as nodes:
        yield nodes[0]


# -- PostgreSQL ---------------------------------------------------------------------------


@dataclass
class PostgresCluster:
    """A PostgreSQL cluster of the test's own (``pg_createcluster VERSION NAME --port P``)."""

    name: str
    port: int
    version: str = PG_VERSION

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _ctl(self, *args: str, timeout: float = 120.0) -> None:
        done = subprocess.run(args, capture_output=True, timeout=timeout, check=False)
        if done.returncode != 0:
            out = (done.stdout + done.stderr).decode("utf-8", "replace")
            raise ServiceError(f"{' '.join(args)} failed:\n{out}")

    def create(self) -> PostgresCluster:
        if port_open(self.port):
            raise ServiceError(f"port {self.port} is taken (a cluster not dropped?)")
        # a stopped cluster of that name left by an interrupted run
        with contextlib.suppress(ServiceError):
            self.drop()
        self._ctl(
            "pg_createcluster", self.version, self.name, "--port", str(self.port),
            "--start", "--", "--auth=trust",
        )  # fmt: skip
        _wait(lambda: port_open(self.port), 60, f"PostgreSQL on {self.port}")
        return self

    def stop(self) -> None:
        """``pg_ctlcluster … stop -m fast``: connections are cut, the server is gone."""
        self._ctl("pg_ctlcluster", self.version, self.name, "stop", "-m", "fast")

    def start(self) -> None:
        self._ctl("pg_ctlcluster", self.version, self.name, "start")
        _wait(lambda: port_open(self.port), 60, f"PostgreSQL on {self.port}")

    def drop(self) -> None:
        self._ctl("pg_dropcluster", self.version, self.name, "--stop")


@contextlib.contextmanager
def postgres_cluster(name: str, port: int) -> Iterator[PostgresCluster]:
    """A started cluster of the test's own, dropped (``pg_dropcluster --stop``) on exit."""
    cluster = PostgresCluster(name, port)
    cluster.create()
    try:
        yield cluster
    finally:
        cluster.drop()


# -- a failover TCP proxy -----------------------------------------------------------------


class FailoverProxy:
    """Listens on ``127.0.0.1:port`` (0: a free port, see ``.port`` once entered); each new
    connection goes to the first target that accepts.

    Open connections are not moved: when their node dies they break, and the client's reconnect
    lands on a surviving node (what a load balancer in front of a RabbitMQ cluster does).
    """

    def __init__(self, port: int, targets: Sequence[tuple[str, int]]) -> None:
        self.port = port
        self.targets = list(targets)
        self._stop = threading.Event()
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._socks: set[socket.socket] = set()
        self._lock = threading.Lock()

    def __enter__(self) -> FailoverProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        self.port = listener.getsockname()[1]
        listener.listen(64)
        listener.settimeout(0.2)
        self._listener = listener
        self._spawn(self._accept)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            for s in self._socks:
                with contextlib.suppress(OSError):
                    s.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _upstream(self) -> socket.socket | None:
        for host, port in self.targets:
            with contextlib.suppress(OSError):
                return socket.create_connection((host, port), timeout=2)
        return None

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = self._upstream()
            if upstream is None:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._socks |= {client, upstream}
            self._spawn(self._pump, client, upstream)

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([a, b], [], [], 0.2)
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    (b if s is a else a).sendall(data)
        except OSError:
            return
        finally:
            with self._lock:
                self._socks -= {a, b}
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.close()


# -- by hand ------------------------------------------------------------------------------


def main(argv: list[str]) -> None:
    if argv[:1] == ["rabbitmq"] and len(argv) == 5:
        name, amqp, mgmt, dist = argv[1], *map(int, argv[2:])
        node = RabbitNode(name, amqp, mgmt, dist, BY_HAND / name).start()
        print(f"started {node.node}: {node.amqp_url()} {node.management_url}")
    elif argv[:1] == ["stop-rabbitmq"] and len(argv) == 2:
        node = RabbitNode(argv[1], 0, 0, 0, BY_HAND / argv[1])
        node.ctl("stop")
        shutil.rmtree(node.base, ignore_errors=True)
        print(f"stopped {node.node}")
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
