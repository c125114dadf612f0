"""/healthz's RabbitMQ check keeps one connection, replaces a lost one, and never hangs on its lock.

The connection is a fake (a ``pika.BlockingConnection`` that opens no socket) so that a check
stuck on a stalled broker can be held and released at will; the real broker's side is
tests/integration/test_ops_healthz_broker.py.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pika
import pika.exceptions
import pytest

from relay.metrics import health

URL = "amqp://hub:s3cret@rabbit.example:5672/lienthong"
#: The check's timeout in these tests: short, the fake answers at once unless held.
TIMEOUT = 0.2


class FakeConnection(pika.BlockingConnection):  # type: ignore[misc]
    """Opens at once; ``process_data_events`` waits while ``release`` is clear (a stalled
    broker) and raises as pika does once the broker has closed it (``open = False``)."""

    def __init__(self, parameters: pika.URLParameters) -> None:  # no super(): no socket
        self.parameters = parameters
        self.open = True
        self.closes = 0
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def process_data_events(self, time_limit: float | None = 0) -> None:
        self.entered.set()
        assert self.release.wait(10)
        if not self.open:
            raise pika.exceptions.ConnectionClosedByBroker(320, "CONNECTION_FORCED")

    @property
    def is_open(self) -> bool:
        return self.open

    def close(self, reply_code: int = 200, reply_text: str = "Normal shutdown") -> None:
        self.open = False
        self.closes += 1


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> list[FakeConnection]:
    found: list[FakeConnection] = []

    def connect(parameters: pika.URLParameters) -> FakeConnection:
        found.append(FakeConnection(parameters))
        return found[-1]

    monkeypatch.setattr(pika, "BlockingConnection", connect)
    monkeypatch.setattr(health, "CHECK_TIMEOUT_SECONDS", TIMEOUT)
    return found


def in_thread(check: health.BrokerCheck) -> tuple[threading.Thread, list[str | None]]:
    answers: list[str | None] = []
    thread = threading.Thread(target=lambda: answers.append(check()), daemon=True)
    thread.start()
    return thread, answers


def test_calls_reuse_one_connection_named_lienthong_healthz(made: list[FakeConnection]) -> None:
    check = health.BrokerCheck(URL)
    assert [check() for _ in range(5)] == [None] * 5
    assert len(made) == 1
    params: Any = made[0].parameters
    assert params.client_properties == {"connection_name": "lienthong-healthz"}
    assert (params.connection_attempts, params.socket_timeout) == (1, TIMEOUT)
    # a broker gone silent (a partition) is found out by TCP keepalive within seconds
    assert params.tcp_options == {
        "TCP_KEEPIDLE": 2,
        "TCP_KEEPINTVL": 1,
        "TCP_KEEPCNT": 2,
        "TCP_USER_TIMEOUT": 4000,
    }


def test_a_connection_the_broker_closed_is_replaced_by_the_next_call(
    made: list[FakeConnection],
) -> None:
    check = health.BrokerCheck(URL)
    assert check() is None
    made[0].open = False  # the broker closed it: the next call reads that
    assert check() is None
    assert len(made) == 2 and made[1].open


def test_a_call_that_cannot_take_the_lock_in_time_answers_a_problem(
    made: list[FakeConnection],
) -> None:
    check = health.BrokerCheck(URL)
    assert check() is None
    made[0].release.clear()  # the broker stalls: the next call waits in pika
    made[0].entered.clear()
    stuck, answers = in_thread(check)
    assert made[0].entered.wait(5)

    started = time.monotonic()
    problem = check()
    waited = time.monotonic() - started
    assert problem is not None
    assert "RabbitMQ at amqp://hub:***@rabbit.example:5672/lienthong was not checked" in problem
    assert "s3cret" not in problem
    assert TIMEOUT * 0.9 <= waited < TIMEOUT + 2

    made[0].release.set()
    stuck.join(5)
    assert answers == [None]
    assert check() is None  # the lock was given back
    assert len(made) == 1


def test_close_closes_the_connection_and_later_calls_open_none(
    made: list[FakeConnection],
) -> None:
    check = health.BrokerCheck(URL)
    assert check() is None
    check.close()
    assert made[0].closes == 1
    problem = check()
    assert problem is not None and "stopped" in problem
    assert len(made) == 1


def test_a_call_still_running_at_close_closes_the_connection_when_it_ends(
    made: list[FakeConnection],
) -> None:
    check = health.BrokerCheck(URL)
    assert check() is None
    made[0].release.clear()
    made[0].entered.clear()
    stuck, answers = in_thread(check)
    assert made[0].entered.wait(5)
    check.close()  # gives up waiting for the lock after 3 × TIMEOUT
    assert made[0].closes == 0
    made[0].release.set()
    stuck.join(5)
    assert made[0].closes == 1
    assert len(answers) == 1
