"""The relay's /healthz checks RabbitMQ over one kept connection, not one per probe.

The endpoint runs in the test's process (``relay.cli.monitoring.monitoring``, as ``lienthong
relay run`` serves it), so pika's ``BlockingConnection`` can be counted; RabbitMQ's management
API shows what the broker sees (connection ``lienthong-healthz`` on the test's vhost).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx
import pika
import pytest

from relay.cli.monitoring import monitoring
from relay.config import Settings
from tests.adapter_support import TcpProxy, wait_for
from tests.ops_support import close_connection, named_connections
from tests.services import Services

pytestmark = pytest.mark.integration

NAME = "lienthong-healthz"
PROBES = 5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[pika.BlockingConnection]:
    """Every ``pika.BlockingConnection`` this process tries to open during the test."""
    made: list[pika.BlockingConnection] = []

    class Counted(pika.BlockingConnection):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            made.append(self)  # an attempt, counted whether or not it opens
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(pika, "BlockingConnection", Counted)
    return made


@pytest.fixture
def endpoint(relay_env: Settings) -> Iterator[tuple[Settings, str]]:
    """The relay's settings with a monitoring port of the test's own, and its base URL."""
    addr = f"127.0.0.1:{free_port()}"
    yield relay_env.model_copy(update={"metrics_addr": addr}), f"http://{addr}"


def vhost_of(settings: Settings) -> str:
    return unquote(urlsplit(settings.amqp_url).path[1:])


def healthz(url: str) -> tuple[int, str]:
    answer = httpx.get(f"{url}/healthz", timeout=15)
    return answer.status_code, answer.text


def listed(services: Services, settings: Settings) -> list[str]:
    return named_connections(services.management_url, vhost_of(settings), NAME)


def test_consecutive_probes_keep_one_connection_closed_when_the_endpoint_stops(
    endpoint: tuple[Settings, str], services: Services, opened: list[pika.BlockingConnection]
) -> None:
    settings, url = endpoint
    with monitoring(settings):
        for _ in range(PROBES):
            assert healthz(url) == (200, "ok\n")
        # One handshake for all the probes (one per probe before: PROBES opened and closed).
        assert len(opened) == 1
        assert opened[0].is_open
        wait_for(lambda: len(listed(services, settings)) == 1, 30, f"one {NAME} listed")
        kept = listed(services, settings)
        for _ in range(PROBES):
            assert healthz(url) == (200, "ok\n")
        assert len(opened) == 1
        assert listed(services, settings) == kept
    assert opened[0].is_closed
    wait_for(lambda: listed(services, settings) == [], 30, f"no {NAME} listed after the stop")


def test_a_connection_the_broker_closed_is_replaced_at_the_next_probe(
    endpoint: tuple[Settings, str], services: Services, opened: list[pika.BlockingConnection]
) -> None:
    settings, url = endpoint
    with monitoring(settings):
        assert healthz(url) == (200, "ok\n")
        wait_for(lambda: len(listed(services, settings)) == 1, 30, f"one {NAME} listed")
        [first] = listed(services, settings)
        close_connection(services.management_url, first)
        # RabbitMQ sends Connection.Close and lists the connection (as closing) until the
        # client answers; the first probe that reads it opens another connection.
        answers: list[tuple[int, str]] = []

        def replaced() -> bool:
            answers.append(healthz(url))
            return len(opened) > 1

        wait_for(replaced, 10, "a probe to replace the closed connection")
        assert set(answers) == {(200, "ok\n")}
        assert len(opened) == 2
        assert opened[0].is_closed and opened[1].is_open
        wait_for(lambda: first not in listed(services, settings), 30, "the old one gone")
        wait_for(lambda: len(listed(services, settings)) == 1, 30, f"the new {NAME} listed")


def test_an_unreachable_broker_is_a_problem_that_names_the_url_without_password(
    endpoint: tuple[Settings, str],
) -> None:
    settings, url = endpoint
    port = free_port()  # nothing listens there
    wrong = settings.model_copy(
        update={"amqp_url": f"amqp://guest:s3cret@127.0.0.1:{port}/{vhost_of(settings)}"}
    )
    with monitoring(wrong):
        for _ in range(2):  # the first probe and the next one, which tries again
            status, text = healthz(url)
            assert status == 503
            assert f"RabbitMQ is unreachable at amqp://guest:***@127.0.0.1:{port}/" in text
            assert "s3cret" not in text


def test_a_lost_connection_is_a_problem_while_the_broker_is_gone_then_healthy_again(
    endpoint: tuple[Settings, str], opened: list[pika.BlockingConnection]
) -> None:
    settings, url = endpoint
    target = urlsplit(settings.amqp_url)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5672)
    proxy.start()
    netloc = f"{target.username}:{target.password}@127.0.0.1:{proxy.port}"
    via_proxy = settings.model_copy(
        update={"amqp_url": urlunsplit((target.scheme, netloc, target.path, "", ""))}
    )
    try:
        with monitoring(via_proxy):
            assert healthz(url) == (200, "ok\n")
            proxy.cut()  # the kept connection is lost and no new one opens
            status, text = healthz(url)
            assert status == 503
            assert f"RabbitMQ is unreachable at amqp://guest:***@127.0.0.1:{proxy.port}/" in text
            proxy.restore()
            assert healthz(url) == (200, "ok\n")
            assert healthz(url) == (200, "ok\n")
            # the first, the one refused while the proxy was cut, the one kept since
            assert len(opened) == 3
    finally:
        proxy.cut()
