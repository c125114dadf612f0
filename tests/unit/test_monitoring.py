"""The monitoring endpoint's pure parts: addresses, health answers, rejection labels."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from adapters.config import ConfigError, parse_config
from lienthong.monitoring import AddressError, MonitoringServer, parse_addr
from relay.metrics.collector import rejection_reason


@pytest.mark.parametrize(
    ("addr", "expected"),
    [
        ("", None),
        ("127.0.0.1:9464", ("127.0.0.1", 9464)),
        (":9464", ("0.0.0.0", 9464)),
        ("[::1]:9464", ("::1", 9464)),
    ],
)
def test_an_address_is_host_and_port_or_empty_for_off(
    addr: str, expected: tuple[str, int] | None
) -> None:
    assert parse_addr(addr) == expected


@pytest.mark.parametrize("addr", ["9464", "localhost", "host:port", "127.0.0.1:70000"])
def test_a_wrong_address_says_what_is_expected(addr: str) -> None:
    with pytest.raises(AddressError, match="host:port"):
        parse_addr(addr)


def test_an_adapters_wrong_metrics_addr_names_the_key(tmp_path: Any) -> None:
    with pytest.raises(ConfigError, match="metrics_addr"):
        parse_config(
            {
                "agency": "000.00.00.H41",
                "amqp_url": "amqp://000.00.00.H41:pw@127.0.0.1:5672/lienthong",
                "root": str(tmp_path),
                "metrics_addr": "9464",
            }
        )


def _get(server: MonitoringServer, path: str) -> tuple[str, str]:
    answer: dict[str, str] = {}

    def start_response(status: str, _headers: list[tuple[str, str]]) -> None:
        answer["status"] = status

    body = b"".join(server.app({"PATH_INFO": path, "REQUEST_METHOD": "GET"}, start_response))
    return answer["status"], body.decode()


def test_healthz_lists_every_problem_and_a_check_that_raises_is_one() -> None:
    def broken() -> str | None:
        raise RuntimeError("boom")

    server = MonitoringServer(
        ("127.0.0.1", 0),
        CollectorRegistry(),
        health=[lambda: None, lambda: "PostgreSQL is unreachable at x", broken],
        ready=[lambda: "not migrated"],
    )
    status, body = _get(server, "/healthz")
    assert status.startswith("503")
    assert "PostgreSQL is unreachable at x" in body
    assert "RuntimeError: boom" in body
    assert "not migrated" not in body
    assert "not migrated" in _get(server, "/readyz")[1]
    assert _get(server, "/nothing")[0].startswith("404")


def test_a_check_object_that_raises_is_named_by_its_class() -> None:
    class BrokenCheck:
        def __call__(self) -> str | None:
            raise OSError("no route to host")

    server = MonitoringServer(("127.0.0.1", 0), CollectorRegistry(), health=[BrokenCheck()])
    status, body = _get(server, "/healthz")
    assert status.startswith("503")
    assert "BrokenCheck failed: OSError: no route to host" in body


def test_healthz_is_ok_when_every_check_passes() -> None:
    server = MonitoringServer(("127.0.0.1", 0), CollectorRegistry(), health=[lambda: None])
    assert _get(server, "/healthz") == ("200 OK", "ok\n")


@pytest.mark.parametrize(
    ("reason", "label"),
    [
        ("user_id: the AMQP user_id property is missing; the adapter must set it", "user_id"),
        ("message is 99 bytes, larger than the limit of 10 bytes", "too_large"),
        ("the relay could not process this message: KeyError()", "relay_error"),
        ("Văn bản không hợp lệ", "other"),
    ],
)
def test_rejection_reasons_become_a_few_labels(reason: str, label: str) -> None:
    assert rejection_reason(reason) == label
