"""Helpers of the operations tests: the relay's monitoring endpoint, read as Prometheus does."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from urllib.parse import quote, urlsplit

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.relay_support import RelayProcess


def metrics_port(relay: RelayProcess, timeout: float = 30.0) -> int:
    """The port the relay serves /metrics on (it logs ``relay.metrics_serving``)."""
    relay.wait_for_log('"relay.metrics_serving"', timeout=timeout)
    for line in relay.log_text().splitlines():
        if '"relay.metrics_serving"' in line:
            return int(json.loads(line)["addr"].rsplit(":", 1)[1])
    raise AssertionError("no relay.metrics_serving line")


def scrape(port: int) -> dict[str, float]:
    """Every sample as ``name{label="v",…}`` → value (labels sorted)."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


def wait_for_metrics(
    port: int, ok: Callable[[dict[str, float]], bool], timeout: float = 40.0
) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while True:
        found = scrape(port)
        if ok(found):
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"metrics never matched in {timeout}s: {found}")
        time.sleep(0.5)


def _management(management_url: str) -> httpx.Client:
    parts = urlsplit(management_url)
    base = f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    auth = (parts.username or "guest", parts.password or "guest")
    return httpx.Client(base_url=base + "/api", auth=auth, timeout=30)


def named_connections(management_url: str, vhost: str, name: str) -> list[str]:
    """The management API's names (``peer -> broker``, one per TCP connection) of the connections
    on ``vhost`` whose client called them ``name`` (``connection_name``). RabbitMQ lists a new
    connection a moment after it opened and drops a closed one a moment after it closed."""
    with _management(management_url) as api:
        found = api.get("/connections", params={"columns": "name,vhost,user_provided_name"})
        found.raise_for_status()
    return sorted(
        str(c["name"])
        for c in found.json()
        if c.get("vhost") == vhost and c.get("user_provided_name") == name
    )


def close_connection(management_url: str, name: str) -> None:
    """Have RabbitMQ close one connection (``DELETE /api/connections/NAME``)."""
    with _management(management_url) as api:
        api.delete(
            f"/connections/{quote(name, safe='')}", headers={"X-Reason": "closed by a test"}
        ).raise_for_status()
