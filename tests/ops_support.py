"""Helpers of the operations tests: the relay's monitoring endpoint, read as Prometheus does."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

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
