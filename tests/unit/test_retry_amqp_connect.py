"""Failed connects become the project's own errors, whatever pika raised.

The retry worker's broker edge (relay/retry/amqp.py) raises ServiceUnavailable, and the
/healthz probe reports a problem, also for a handshake that stalls, which pika reports with
an exception that is no ``AMQPError``. Issue 14: the retry edge once named
``pika.exceptions.AMQPConnectorException``, which does not exist, so a failed connect there
raised ``AttributeError``; the health probe still did.
"""

from __future__ import annotations

import ast
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pika.exceptions
import pytest

from relay.errors import ServiceUnavailable
from relay.metrics import health
from relay.retry import amqp

ROOT = Path(__file__).parents[2]


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word (a stalled broker)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for s in accepted:
        s.close()
    server.close()


def test_a_stalled_handshake_is_service_unavailable(silent_port: int) -> None:
    url = (
        f"amqp://guest:guest@127.0.0.1:{silent_port}/%2F"
        "?connection_attempts=1&socket_timeout=0.5&stack_timeout=0.5"
    )
    with pytest.raises(ServiceUnavailable, match="RabbitMQ is unreachable"):
        amqp.connect(url, name="test")


def test_the_health_probe_reports_a_stalled_broker_as_a_problem(
    silent_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/healthz: the same stalled handshake is a problem to report, not an AttributeError."""
    monkeypatch.setattr(health, "CHECK_TIMEOUT_SECONDS", 0.25)
    url = f"amqp://guest:guest@127.0.0.1:{silent_port}/%2F?stack_timeout=0.5"
    problem = health.BrokerCheck(url)()
    assert problem is not None and "RabbitMQ is unreachable" in problem


def pika_exception_names(source: str) -> Iterator[tuple[int, str]]:
    """(line, name) of every ``pika.exceptions.<name>`` the source refers to."""
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "exceptions"
            and isinstance(node.value.value, ast.Name)
            and node.value.value.id == "pika"
        ):
            yield node.lineno, node.attr


def test_every_pika_exception_the_project_names_exists() -> None:
    """An ``except`` clause naming what pika does not define fails only when it is reached
    (with AttributeError); this finds such a name before then."""
    missing = []
    for package in ("relay", "adapters", "lienthong", "tests"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for line, name in pika_exception_names(path.read_text(encoding="utf-8")):
                if not hasattr(pika.exceptions, name):
                    missing.append(f"{path.relative_to(ROOT)}:{line} pika.exceptions.{name}")
    assert missing == []


def test_the_pika_walk_finds_names() -> None:
    source = "try:\n    pass\nexcept pika.exceptions.Nope:\n    pass\n"
    assert list(pika_exception_names(source)) == [(3, "Nope")]
