"""Helpers for the adapter's tests: agencies on the broker, configs, folders, a TCP proxy,
adapters in a thread or as real processes, and playing the relay by hand."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import secrets
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pika

from adapters.config import AdapterConfig, load_config
from adapters.daemon import Adapter
from relay.broker.management import ManagementClient
from relay.broker.topology import provision_agency
from relay.config import Settings
from schemas import Document, Organization, Status
from schemas import topology as t
from schemas.envelope import encode_message

REPO = Path(__file__).resolve().parent.parent
LIENTHONG = [sys.executable, "-c", "from lienthong.cli import main; main()"]


def wait_for(
    predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.1
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def provision(settings: Settings, management: ManagementClient, code: str) -> str:
    """Provision ``code`` on the broker (user, permissions, queues); returns its password."""
    password = secrets.token_urlsafe(12)
    provision_agency(management, settings.vhost, code, password)
    return password


def agency_url(settings: Settings, port: int | None = None) -> str:
    """The env's AMQP URL without credentials (the adapter adds agency + password_file)."""
    parts = urlsplit(settings.amqp_url)
    host = parts.hostname or "127.0.0.1"
    return urlunsplit(("amqp", f"{host}:{port or parts.port or 5672}", parts.path, "", ""))


def write_config(directory: Path, code: str, url: str, password: str, **extra: object) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    secret = directory / "secret"
    secret.write_text(password + "\n")
    lines = [
        f'agency = "{code}"',
        f'amqp_url = "{url}"',
        'password_file = "secret"',
        'root = "root"',
    ]
    extra.setdefault("poll_seconds", 0.1)
    extra.setdefault("reconnect_initial_seconds", 0.2)
    extra.setdefault("reconnect_max_seconds", 1.0)
    for key, value in extra.items():
        lines.append(f"{key} = {value!r}".replace("'", '"'))
    path = directory / "adapter.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def make_document(sender: str, recipients: list[str], document_id: str | None = None) -> Document:
    return Document(
        document_id=document_id or f"{sender},2026/11/24,{uuid.uuid4().hex[:8]}/VPCP-TH",
        sender=Organization(organ_id=sender, organ_name="Văn phòng gửi"),
        recipients=[Organization(organ_id=r, organ_name=f"Nơi nhận {r}") for r in recipients],
        subject="Về việc thử nghiệm trục liên thông",
    )


def make_status(sender: str, addressee: str, document_id: str, code: str = "03") -> Status:
    return Status(
        sender=Organization(organ_id=sender),
        response_for={"organ_id": addressee, "document_id": document_id},
        status_code=code,
        timestamp=dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.UTC),
    )


def drop(outbox: Path, name: str, data: bytes) -> Path:
    """Hand a file over the way a DMS should: temporary dot-name, then rename."""
    outbox.mkdir(parents=True, exist_ok=True)
    tmp = outbox / f".{name}.part"
    tmp.write_bytes(data)
    final = outbox / name
    os.rename(tmp, final)
    return final


def visible_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith("."))


@contextlib.contextmanager
def adapter_thread(config_path: Path) -> Iterator[Adapter]:
    """Run an adapter daemon in a thread of the test process; stopped on exit."""
    adapter = Adapter(load_config(config_path))
    errors: list[BaseException] = []

    def target() -> None:
        try:
            adapter.run()
        except BaseException as e:
            errors.append(e)

    thread = threading.Thread(target=target, name="adapter", daemon=True)
    thread.start()
    try:
        yield adapter
    finally:
        adapter.stop.set()
        thread.join(timeout=30)
        assert not thread.is_alive(), "adapter did not stop"
    if errors:
        raise errors[0]


class AdapterProcess:
    """``lienthong adapter run`` as a real process."""

    def __init__(self, config_path: Path, log_path: Path) -> None:
        self.config_path = config_path
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> AdapterProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [*LIENTHONG, "adapter", "run", "--config", str(self.config_path)],
            stdout=log,
            stderr=log,
            cwd=REPO,
        )
        log.close()
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 20) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class TcpProxy:
    """A TCP forwarder on 127.0.0.1 to cut an adapter's connection without stopping RabbitMQ.

    ``cut()`` closes the listener and every open connection (as if the broker were gone);
    ``restore()`` listens again on the same port.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        listener.settimeout(0.2)
        self._listener = listener
        self._stop.clear()
        thread = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        thread.start()
        self._threads.append(thread)

    start = restore

    def _accept(self, listener: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        socks = [a, b]
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select(socks, [], [], 0.2)
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    (b if s is a else a).sendall(data)
        except OSError:
            return
        finally:
            for s in socks:
                with contextlib.suppress(OSError):
                    s.close()

    def cut(self) -> None:
        self._stop.set()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            for s in self._conns:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    s.close()
            self._conns.clear()
        for th in self._threads:
            th.join(timeout=5)
        self._threads.clear()

    close = cut


class Broker:
    """The test's own (guest) connection to the env's vhost: plays the relay by hand."""

    def __init__(self, settings: Settings) -> None:
        self.connection = pika.BlockingConnection(pika.URLParameters(settings.amqp_url))
        self.channel = self.connection.channel()
        self.channel.confirm_delivery()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.connection.close()

    def __enter__(self) -> Broker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def deliver(
        self,
        route_to: str,
        message: Document | Status | bytes,
        *,
        message_type: str = t.TYPE_DOCUMENT,
        message_id: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> str:
        """Publish into ``route_to``'s inbox as the relay would; returns the message id."""
        body = message if isinstance(message, bytes) else encode_message(message)
        mid = message_id or str(uuid.uuid4())
        self.channel.basic_publish(
            t.DELIVER_EXCHANGE,
            t.deliver_routing_key(route_to),
            body,
            pika.BasicProperties(
                message_id=mid,
                type=message_type,
                delivery_mode=2,
                content_type=t.CONTENT_TYPE,
                headers=headers or {t.HEADER_RECIPIENT: route_to},
            ),
            mandatory=True,
        )
        return mid

    def deliver_many(self, route_to: str, messages: list[Document]) -> list[str]:
        """Publish many documents into an inbox, each confirmed (a publish the broker did not
        take raises here, rather than leaving the wait below to time out); their ids."""
        channel = self.connection.channel()
        channel.confirm_delivery()
        ids = []
        for message in messages:
            mid = str(uuid.uuid4())
            channel.basic_publish(
                t.DELIVER_EXCHANGE,
                t.deliver_routing_key(route_to),
                encode_message(message),
                pika.BasicProperties(
                    message_id=mid,
                    type=t.TYPE_DOCUMENT,
                    delivery_mode=2,
                    content_type=t.CONTENT_TYPE,
                    headers={t.HEADER_RECIPIENT: route_to},
                ),
            )
            ids.append(mid)
        channel.close()
        wait_for(lambda: self.count(t.inbox_queue(route_to)) >= len(ids), 30, "the deliveries")
        return ids

    def take(self, queue: str, limit: int = 100_000) -> list[tuple[object, bytes]]:
        """Get (and ack) what is in ``queue`` now: (properties, body) pairs."""
        got: list[tuple[object, bytes]] = []
        while len(got) < limit:
            method, props, body = self.channel.basic_get(queue, auto_ack=True)
            if method is None:
                break
            got.append((props, body))
        return got

    def count(self, queue: str) -> int:
        result = self.channel.queue_declare(queue, passive=True)
        return int(result.method.message_count)


def config_of(path: Path) -> AdapterConfig:
    return load_config(path)


@contextlib.contextmanager
def unwritable(directory: Path) -> Iterator[None]:
    """Make ``directory`` impossible to write into, even for root (a file takes its place)."""
    if os.geteuid() != 0:
        mode = directory.stat().st_mode
        directory.chmod(0o500)
        try:
            yield
        finally:
            directory.chmod(mode)
        return
    aside = directory.with_name(directory.name + ".aside")
    os.rename(directory, aside)
    directory.write_text("not a folder\n")
    try:
        yield
    finally:
        directory.unlink()
        os.rename(aside, directory)
