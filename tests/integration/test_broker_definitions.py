"""The definitions file describes exactly what ``relay setup`` declares, and RabbitMQ takes it."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from relay.broker.definitions import definitions
from relay.broker.management import ManagementClient
from tests.conftest import EnvFactory

pytestmark = pytest.mark.integration

KEYS = ("exchanges", "queues", "bindings", "policies")


def core(doc: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The hub's own objects of a definitions document, without vhost names, in a fixed order."""
    out: dict[str, list[dict[str, Any]]] = {}
    for key in KEYS:
        items = [
            {k: v for k, v in item.items() if k != "vhost"}
            for item in doc.get(key, [])
            if not str(item.get("name", "")).startswith("amq.")
        ]
        out[key] = sorted(items, key=repr)
    return out


def test_relay_setup_and_the_definitions_file_declare_the_same_objects(
    make_env: EnvFactory, management: ManagementClient
) -> None:
    env = make_env()  # a fresh vhost where `relay setup` has run, no agencies
    path = f"/definitions/{quote(env.vhost, safe='')}"
    declared = management._request("GET", path)
    assert core(declared) == core(definitions(env))

    # RabbitMQ accepts the file, and importing it over a set-up vhost changes nothing.
    management._request("POST", path, definitions(env))
    assert core(management._request("GET", path)) == core(declared)
