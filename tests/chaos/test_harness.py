"""The suite's own instruments: the DMS counts hand-overs per DocumentId, the proxy fails over."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from schemas import encode_message
from tests.adapter_support import make_document
from tests.chaos.scene import Dms, Tally
from tests.chaos.table import render
from tests.private_services import FailoverProxy

pytestmark = pytest.mark.chaos


def _wait(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def _hand_over(inbox: Path, name: str, document_id: str) -> None:
    body = encode_message(make_document("000.00.00.G22", ["000.00.00.H26"], document_id))
    (inbox / f".{name}.tmp").write_bytes(body)
    (inbox / f".{name}.tmp").rename(inbox / name)


def test_the_dms_counts_a_document_handed_twice_under_the_same_file_name(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    dms = Dms(inbox, tmp_path / "taken")
    dms.start()
    try:
        _hand_over(inbox, "a.json", "G22,2026/11/30,1/VP")
        _wait(lambda: dms.handovers == 1)
        _hand_over(inbox, "a.json", "G22,2026/11/30,1/VP")  # the same file again
        _hand_over(inbox, "b.json", "G22,2026/11/30,2/VP")
        _wait(lambda: dms.handovers == 3)
        _hand_over(inbox, ".partial.json", "G22,2026/11/30,3/VP")  # not visible: not taken
        time.sleep(0.1)
    finally:
        dms.halt()
    assert dms.snapshot() == {"G22,2026/11/30,1/VP": 2, "G22,2026/11/30,2/VP": 1}
    assert sorted(p.name for p in inbox.iterdir()) == [".partial.json"]


def test_the_table_has_one_line_per_case_with_its_counts() -> None:
    rows = [
        Tally("relay SIGKILL", 300, 300, 0, 0, "", 8.0),
        Tally("adapter SIGKILL", 300, 299, 1, 33, "5 kills", 11.0),
    ]
    lines = render(rows).splitlines()
    assert [c.strip() for c in lines[0].split(" | ")][:6] == [
        "case",
        "sent",
        "arrived",
        "lost",
        "doubled",
        "seconds",
    ]
    assert [c.strip() for c in lines[3].split(" | ")] == [
        "adapter SIGKILL", "300", "299", "1", "33", "11", "5 kills",
    ]  # fmt: skip
    assert not rows[1].clean and rows[0].clean


@contextlib.contextmanager
def _echo_server(tag: bytes) -> Iterator[tuple[int, threading.Event]]:
    """A server answering each line with ``tag`` + the line; set the event to close it all."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.1)
    down = threading.Event()
    conns: list[socket.socket] = []

    def serve() -> None:
        while not down.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            conns.append(conn)
            threading.Thread(target=echo, args=(conn,), daemon=True).start()
        server.close()
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            c.close()

    def echo(conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := conn.recv(1024):
                conn.sendall(tag + data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], down
    finally:
        down.set()
        thread.join(5)


def _ask(port: int, line: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(line)
        return s.recv(1024)


def test_the_proxy_sends_new_connections_to_the_first_target_alive_and_drops_broken_ones() -> None:
    with (
        _echo_server(b"one:") as (first, first_down),
        _echo_server(b"two:") as (second, _),
        FailoverProxy(0, [("127.0.0.1", first), ("127.0.0.1", second)]) as proxy,
    ):
        held = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        held.sendall(b"x")
        assert held.recv(1024) == b"one:x"
        first_down.set()
        _wait(lambda: held.recv(1024) == b"")  # its node is gone: the client sees it
        held.close()
        _wait(lambda: _ask(proxy.port, b"y") == b"two:y")
