"""An adapter's /metrics and /healthz on ``metrics_addr`` (issue 18): spool depth and age."""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import Engine

from relay.config import Settings
from schemas.envelope import encode_message
from tests.adapter_support import (
    TcpProxy,
    adapter_thread,
    agency_url,
    drop,
    make_document,
    wait_for,
    write_config,
)
from tests.ops_support import scrape
from tests.relay_support import add_agency
from tests.services import random_code

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_spool_depth_and_age_show_an_unreachable_broker_and_healthz_says_so(
    relay_env: Settings, db: Engine, tmp_path: Path
) -> None:
    a = add_agency(relay_env, db, random_code())
    b = add_agency(relay_env, db, random_code())
    assert a.password
    target = urlsplit(relay_env.amqp_url)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5672)
    proxy.start()
    port = free_port()
    config = write_config(
        tmp_path,
        a.code,
        agency_url(relay_env, proxy.port),
        a.password,
        metrics_addr=f"127.0.0.1:{port}",
    )
    labels = f'agency="{a.code}"'
    try:
        with adapter_thread(config) as adapter:
            wait_for(adapter.broker.connected.is_set, 30, "the adapter connected")
            url = f"http://127.0.0.1:{port}"
            assert httpx.get(f"{url}/healthz").text == "ok\n"
            assert scrape(port)[f"lienthong_adapter_broker_connected{{{labels}}}"] == 1

            proxy.cut()
            wait_for(lambda: not adapter.broker.connected.is_set(), 30, "the outage")
            root = tmp_path / "root"
            for i in range(3):
                doc = make_document(a.code, [b.code], f"{a.code},2026/11/30,{i}/VP")
                drop(root / "outbox", f"vb-{i}.json", encode_message(doc))
            depth = f"lienthong_adapter_spool_depth{{{labels}}}"
            wait_for(lambda: scrape(port)[depth] == 3, 30, "three spooled")
            down = httpx.get(f"{url}/healthz")
            assert down.status_code == 503
            assert "RabbitMQ is unreachable" in down.text
            wait_for(
                lambda: scrape(port)[f"lienthong_adapter_spool_oldest_seconds{{{labels}}}"] > 1,
                30,
                "the oldest spooled age to grow",
            )

            proxy.restore()
            wait_for(lambda: scrape(port)[depth] == 0, 60, "the spool sent")
            found = scrape(port)
            assert found[f'lienthong_adapter_sent_total{{{labels},type="document"}}'] == 3
            assert found[f"lienthong_adapter_spool_oldest_seconds{{{labels}}}"] == 0
            assert httpx.get(f"{url}/healthz").status_code == 200
    finally:
        proxy.cut()
