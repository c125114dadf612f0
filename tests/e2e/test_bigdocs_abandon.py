"""A chunked transfer the hub gives up is abandoned by the recipient's adapter (issue 17).

The recipient's adapter stops mid-assembly and stays away past the hub's transfer timeout (set
to seconds): the hub fails the delivery and tells the sender (``delivery_failed``). When the
adapter comes back and asks for the rest, the hub answers ``chunk_refused``: the adapter
abandons the assembly (its parts deleted, the document never handed over, the reason logged and
kept on its spool row) instead of asking forever.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from relay.config import Settings
from tests.e2e.test_bigdocs_crash import Exchange, MiB
from tests.relay_support import wait_until

# Half a minute with an adapter away: `make chaos` runs it with the SIGKILL cases, `make test`
# does not (README, Tests).
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.chaos,
    pytest.mark.chaos_long,
    pytest.mark.timeout(300),
]

#: The hub's transfer timeout in this test (LIENTHONG_TRANSFER_TIMEOUT_HOURS, in seconds).
TIMEOUT_SECONDS = 6.0


def _receipts(root: Path, kind: str) -> list[dict[str, Any]]:
    folder = root / "inbox" / "receipts"
    found = [json.loads(p.read_text()) for p in folder.glob("*.json")] if folder.is_dir() else []
    return [r for r in found if r["kind"] == kind]


def test_a_transfer_the_hub_gave_up_is_abandoned_not_asked_for_forever(
    make_env: Any, tmp_path: Path
) -> None:
    if "transfer_timeout_hours" not in Settings.model_fields:
        pytest.skip("this hub has no transfer timeout (LIENTHONG_TRANSFER_TIMEOUT_HOURS)")
    world = Exchange(make_env(transfer_timeout_hours=TIMEOUT_SECONDS / 3600), tmp_path)
    try:
        world.send()
        blobs = world.root(world.b) / ".lienthong-blobs"

        def receiving() -> bool:
            return any(p.stat().st_size >= 3 * MiB for p in blobs.glob("parts/*.part"))

        wait_until(receiving, timeout=180, interval=0.05)
        adapter = world.adapters[world.b.code]
        adapter.stop()  # away for longer than the hub waits
        try:
            wait_until(
                lambda: _receipts(world.root(world.a), "delivery_failed"), timeout=120, interval=0.5
            )
        except AssertionError:
            raise AssertionError("the sender was never told:\n" + world.logs()) from None
        [failed] = _receipts(world.root(world.a), "delivery_failed")
        assert failed["recipient"] == world.b.code
        adapter.start()
        try:
            wait_until(
                lambda: (
                    "inbox.assembly_abandoned" in adapter.log_text()
                    and not any(blobs.glob("parts/*"))
                ),
                timeout=120,
                interval=0.5,
            )
        except AssertionError:
            raise AssertionError("the recipient never gave up:\n" + world.logs()) from None
        with sqlite3.connect(world.root(world.b) / "spool.sqlite3") as db:
            [(abandoned_at, reason)] = db.execute(
                "SELECT abandoned_at, abandon_reason FROM assemblies"
            ).fetchall()
        assert abandoned_at is not None and "hub gave the transfer up" in reason
        assert not world.documents() and not world.statuses_01()
        assert not any(blobs.glob("in/*"))
    finally:
        world.close()
