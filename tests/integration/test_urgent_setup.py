"""Urgent lanes on a hub provisioned before them (issue 18): an adapter of this version still
sends everything (through the ordinary lane), and ``relay setup`` adds the lane to every agency,
under the same policies and least-privilege permissions as the ordinary one."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import Engine

from relay.broker.management import ManagementClient
from relay.config import Settings
from relay.setup import run_setup
from schemas import topology as t
from schemas.envelope import encode_message
from tests.adapter_support import adapter_thread, agency_url, drop, write_config
from tests.integration.test_urgent_lanes import depth, urgent_document
from tests.relay_support import add_agency, wait_until
from tests.services import random_code

pytestmark = pytest.mark.integration


def _remove_urgent_lane(mgmt: ManagementClient, vhost: str, code: str) -> None:
    """What provisioning of an earlier version left: no urgent objects, no rights on them."""
    for queue in (t.outbox_queue(code, urgent=True), t.inbox_queue(code, urgent=True)):
        mgmt.delete_queue(vhost, queue)
    exchange = t.submit_exchange(code, urgent=True)
    mgmt._request("DELETE", f"/exchanges/{quote(vhost, safe='')}/{quote(exchange, safe='')}")
    mgmt.set_permissions(
        vhost,
        code,
        configure="^$",
        write="^" + re.escape(t.submit_exchange(code)) + "$",
        read="^" + re.escape(t.inbox_queue(code)) + "$",
    )


def test_relay_setup_adds_the_urgent_lane_to_a_hub_that_had_none(
    relay_env: Settings, db: Engine, management: ManagementClient, tmp_path: Path
) -> None:
    vhost = relay_env.vhost
    a = add_agency(relay_env, db, random_code())
    _remove_urgent_lane(management, vhost, a.code)
    assert management.get_queue(vhost, t.inbox_queue(a.code, urgent=True)) is None
    assert a.password is not None
    config = write_config(tmp_path / "a", a.code, agency_url(relay_env), a.password)
    root = tmp_path / "a" / "root"

    # Without the lane, the adapter still runs and sends the urgent document the ordinary way.
    with adapter_thread(config):
        drop(root / "outbox", "hoa-toc-1.json", encode_message(urgent_document(a.code, "H01.1")))
        wait_until(lambda: depth(relay_env, t.outbox_queue(a.code)) == 1, timeout=30)

    run_setup(relay_env)

    for queue, policy in (
        (t.outbox_queue(a.code, urgent=True), t.OUTBOX_POLICY),
        (t.inbox_queue(a.code, urgent=True), t.INBOX_POLICY),
    ):
        info = wait_until(lambda q=queue: management.get_queue(vhost, q), timeout=10)
        assert info["arguments"].get("x-queue-type") == "quorum", info["arguments"]
        wait_until(lambda q=queue: (management.get_queue(vhost, q) or {}).get("policy"), timeout=30)
        assert management.get_queue(vhost, queue)["policy"] == policy  # type: ignore[index]
    bindings = management.exchange_bindings(vhost, t.submit_exchange(a.code, urgent=True))
    assert [b["destination"] for b in bindings] == [t.outbox_queue(a.code, urgent=True)]
    perms = management._request("GET", f"/permissions/{quote(vhost, safe='')}/{a.code}")
    assert perms["read"] == "^" + re.escape(t.inbox_queue(a.code)) + r"(\.urgent)?$"

    # With it, the next urgent document takes the urgent lane.
    with adapter_thread(config):
        drop(root / "outbox", "hoa-toc-2.json", encode_message(urgent_document(a.code, "H01.1")))
        wait_until(lambda: depth(relay_env, t.outbox_queue(a.code, urgent=True)) == 1, timeout=30)
    assert depth(relay_env, t.outbox_queue(a.code)) == 1
