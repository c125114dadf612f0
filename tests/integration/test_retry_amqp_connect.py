"""The retry worker's broker edge translates a failed connect into the project's own error."""

from __future__ import annotations

import socket

import pytest

from relay.errors import ServiceUnavailable
from relay.retry import amqp

pytestmark = pytest.mark.integration


def _closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_a_broker_that_cannot_be_reached_is_a_service_unavailable_error() -> None:
    url = f"amqp://guest:guest@127.0.0.1:{_closed_port()}/%2F?connection_attempts=1"
    with pytest.raises(ServiceUnavailable, match="RabbitMQ is unreachable"):
        amqp.connect(url, name="test")
