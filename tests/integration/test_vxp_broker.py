"""sendEdoc while RabbitMQ is unreachable: answered OK once spooled, published when it is back.

A real broker behind a TCP proxy that the test cuts (the shared RabbitMQ is never stopped); the
adapter daemon runs with its SDK API, and the call comes over real HTTP from the SDK-like client.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from relay.broker.management import ManagementClient
from relay.config import Settings
from schemas import topology as t
from tests.adapter_support import (
    Broker,
    TcpProxy,
    adapter_thread,
    agency_url,
    provision,
    wait_for,
    write_config,
)
from tests.services import random_code
from tests.vxp_client import SdkClient

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "edxml" / "document_new.edxml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def behind_proxy(make_env: Any) -> Iterator[tuple[Settings, TcpProxy]]:
    """An environment of its own and a proxy to its broker that the test can cut."""
    settings = make_env()
    proxy = TcpProxy("127.0.0.1", urlsplit(settings.amqp_url).port or 5672)
    proxy.start()
    try:
        yield settings, proxy
    finally:
        proxy.cut()


def test_send_edoc_while_rabbitmq_is_down_is_ok_and_published_once_when_it_is_back(
    behind_proxy: tuple[Settings, TcpProxy], management: ManagementClient, tmp_path: Path
) -> None:
    settings, proxy = behind_proxy
    code = random_code()
    password = provision(settings, management, code)
    config = write_config(tmp_path, code, agency_url(settings, proxy.port), password)
    port = free_port()
    (tmp_path / "vxp.secret").write_text("s3cret\n")
    with config.open("a") as f:
        f.write(
            f'\n[vxp]\nlisten = "127.0.0.1:{port}"\nsystemid = "dms-x"\n'
            'secret_file = "vxp.secret"\n'
        )
    package = SAMPLE.read_bytes().replace(b"000.00.00.G22", code.encode())
    client = SdkClient(f"http://127.0.0.1:{port}", "dms-x", "s3cret")
    # The sample is Priority 1 (Khẩn): the adapter publishes it to the urgent lane (issue 18).
    outbox = t.outbox_queue(code, urgent=True)
    with adapter_thread(config) as adapter, Broker(settings) as broker:

        def up() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/openapi.json").status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, 30, "the SDK API")
        wait_for(adapter.broker.connected.is_set, 30, "the adapter's broker connection")
        proxy.cut()
        wait_for(lambda: not adapter.broker.connected.is_set(), 30, "the outage to be seen")

        answer = client.send_edoc(package)
        assert answer["status"] == "OK", answer
        assert client.send_edoc(package)["DocId"] == answer["DocId"]  # a retry while down
        assert broker.count(outbox) == 0

        proxy.restore()
        wait_for(lambda: broker.count(outbox) == 1, 60, "the publish")
        assert client.send_edoc(package)["DocId"] == answer["DocId"]  # a retry once sent
        [(props, _body)] = broker.take(outbox)
        assert getattr(props, "message_id", None) == answer["DocId"]
        assert getattr(props, "type", None) == t.TYPE_DOCUMENT
        assert broker.count(outbox) == 0
    client.close()
