"""A relay started while RabbitMQ cannot be reached (a wrong port in ``LIENTHONG_AMQP_URL``, a
broker not started yet) keeps trying, and its log says where it tried and why it failed: one
JSON object per line, as ``LIENTHONG_LOG_FORMAT=json`` promises, with no pika traceback."""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit, urlunsplit

import pytest

from relay.config import Settings
from tests.relay_support import RelayProcess

pytestmark = pytest.mark.integration


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_relay_that_cannot_reach_rabbitmq_says_where_and_why_in_json_lines(
    env: Settings,
) -> None:
    port = closed_port()
    parts = urlsplit(env.amqp_url)
    url = urlunsplit(parts._replace(netloc=f"guest:s3cret-pw@127.0.0.1:{port}"))
    relay = RelayProcess(env.model_copy(update={"amqp_url": url}))
    relay.start(wait=False)
    try:
        relay.wait_for_log('"relay.broker_unreachable"')
        relay.wait_for_log('"retry.worker_interrupted"')
        relay.wait_for_log('"relay.reconnecting"')
    finally:
        assert relay.stop() == 0
    text = relay.log_text()
    not_json = []
    events: dict[str, dict[str, object]] = {}
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            not_json.append(line)
            continue
        events.setdefault(str(record.get("event")), record)
    assert not not_json, "lines that are not JSON:\n" + "\n".join(not_json[:10])
    for event in ("relay.broker_unreachable", "retry.worker_interrupted"):
        error = str(events[event]["error"])
        assert f"127.0.0.1:{port}" in error, (event, error)
        assert "Connection refused" in error, (event, error)
    assert "s3cret-pw" not in text
