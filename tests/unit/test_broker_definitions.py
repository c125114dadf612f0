"""The committed RabbitMQ definitions file matches the topology and policies of the code."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from relay.broker.definitions import (
    add_admin,
    default_settings,
    definitions,
    password_hash,
    render,
)
from relay.broker.topology import policies
from schemas import topology as t

ROOT = Path(__file__).parents[2]
COMMITTED = ROOT / "deploy" / "rabbitmq" / "definitions.json"


def test_the_committed_definitions_file_has_not_drifted_from_the_code() -> None:
    expected = render(definitions(default_settings()))
    assert COMMITTED.read_text(encoding="utf-8") == expected, (
        "deploy/rabbitmq/definitions.json is stale: run "
        "`python -m relay.broker.definitions deploy/rabbitmq/definitions.json` and commit it"
    )


def test_the_definitions_hold_the_exchanges_the_hubs_queues_and_every_policy() -> None:
    doc = definitions(default_settings())
    assert {e["name"]: e["type"] for e in doc["exchanges"]} == {
        t.SUBMIT_EXCHANGE: "topic",
        t.DELIVER_EXCHANGE: "direct",
        t.RETURNED_EXCHANGE: "fanout",
        t.FAILED_SUBMISSIONS_EXCHANGE: "fanout",
        t.PARKED_EXCHANGE: "fanout",
    }
    assert {q["name"]: q["arguments"]["x-queue-type"] for q in doc["queues"]} == {
        t.RETURNED_QUEUE: "quorum",
        t.FAILED_SUBMISSIONS_QUEUE: "quorum",
        t.PARKED_QUEUE: "classic",  # counts no deliveries: nothing is ever dropped from it
    }
    assert sorted(p["name"] for p in doc["policies"]) == sorted(policies(default_settings()))
    assert {
        item["vhost"]
        for key in ("exchanges", "queues", "bindings", "policies")
        for item in doc[key]
    } == {"lienthong"}


def test_the_definitions_ignore_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIENTHONG_INBOX_TTL_MS", "5000")
    inbox = next(
        p for p in definitions(default_settings())["policies"] if p["name"] == t.INBOX_POLICY
    )
    assert inbox["definition"]["message-ttl"] == 7 * 24 * 3600 * 1000


def test_the_config_file_loads_the_definitions_file() -> None:
    conf = (ROOT / "deploy" / "rabbitmq" / "rabbitmq.conf").read_text(encoding="utf-8")
    assert "definitions.local.path = /etc/rabbitmq/definitions.json" in conf


def test_an_admin_user_is_stored_as_a_rabbitmq_sha256_hash() -> None:
    salt = b"\x01\x02\x03\x04"
    expected = base64.b64encode(salt + hashlib.sha256(salt + b"s3cret").digest()).decode()
    assert password_hash("s3cret", salt) == expected
    doc = definitions(default_settings())
    add_admin(doc, "lienthong-admin", "s3cret")
    assert doc["users"][0]["name"] == "lienthong-admin"
    assert "s3cret" not in render(doc)
    assert doc["permissions"] == [
        {
            "user": "lienthong-admin",
            "vhost": "lienthong",
            "configure": ".*",
            "write": ".*",
            "read": ".*",
        }
    ]
