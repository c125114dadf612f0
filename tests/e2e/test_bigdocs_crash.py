"""A chunked transfer survives SIGKILL of the relay or of the recipient's adapter (issue 17).

Each test sends a 40 MiB attachment in 1 MiB chunks, kills a process once part of the bytes
has moved, starts it again, and checks that the document arrives once, byte-exact, with one
status 01 back. The 200 MB runs are ``make bench-bigdocs BIGDOCS_ARGS="--size-mb 200 --kill
relay"`` (or ``adapter``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from relay.config import Settings
from relay.db.engine import make_engine
from tests.adapter_support import AdapterProcess, agency_url, write_config
from tests.bigdocs_support import json_attachment_to_file, random_file, sha256_of, write_package
from tests.relay_support import Agency, RelayProcess, add_agency, wait_until
from tests.services import random_code

# Fault cases of a few minutes: `make chaos` runs them, `make test` does not (README, Tests).
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.chaos,
    pytest.mark.chaos_long,
    pytest.mark.timeout(400),
]

MiB = 1024 * 1024
SIZE = 40 * MiB
CHUNKED = {"chunk_threshold_bytes": MiB, "chunk_bytes": MiB, "chunk_retry_seconds": 3.0}


class Exchange:
    """A relay and two adapters (A sends to B) on an environment of their own."""

    def __init__(self, settings: Settings, base: Path) -> None:
        self.settings = settings
        self.base = base
        self.engine = make_engine(settings.database_url)
        self.a, self.b = (add_agency(settings, self.engine, random_code()) for _ in range(2))
        self.relay = RelayProcess(settings)
        self.relay.start(timeout=120)
        self.relay.wait_consuming([self.a.code, self.b.code])
        self.adapters = {c.code: self._adapter(c) for c in (self.a, self.b)}

    def _adapter(self, agency: Agency) -> AdapterProcess:
        assert agency.password is not None
        folder = self.base / agency.code
        config = write_config(
            folder, agency.code, agency_url(self.settings), agency.password, **CHUNKED
        )
        return AdapterProcess(config, folder / "adapter.log").start()

    def root(self, agency: Agency) -> Path:
        return self.base / agency.code / "root"

    def send(self) -> tuple[Path, str]:
        original = self.base / "scan.bin"
        digest = random_file(original, SIZE)
        package = self.base / ".package.edxml"
        write_package(package, original, sender=self.a.code, recipients=[self.b.code], number="7")
        outbox = self.root(self.a) / "outbox"
        wait_until(outbox.is_dir, timeout=30, interval=0.1)
        package.rename(outbox / "cong-van-7.edxml")
        return original, digest

    def hub_bytes(self) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(text("SELECT coalesce(sum(length), 0) FROM blob_chunks")).scalar_one()
            )

    def documents(self) -> list[Path]:
        folder = self.root(self.b) / "inbox" / "documents"
        return sorted(folder.glob("*.json")) if folder.is_dir() else []

    def statuses_01(self) -> list[dict[str, Any]]:
        folder = self.root(self.a) / "inbox" / "statuses"
        found = (
            [json.loads(p.read_text()) for p in folder.glob("*.json")] if folder.is_dir() else []
        )
        return [s for s in found if s["status_code"] == "01"]

    def logs(self) -> str:
        return (
            "\n".join(f"--- {code}\n{p.log_text()[-3000:]}" for code, p in self.adapters.items())
            + f"\n--- relay\n{self.relay.log_text()[-3000:]}"
        )

    def arrives_once_intact(self, original: Path, digest: str) -> None:
        try:
            wait_until(lambda: self.documents() and self.statuses_01(), timeout=240, interval=0.5)
        except AssertionError:
            raise AssertionError("the document never arrived:\n" + self.logs()) from None
        time.sleep(3)  # a second copy or a second 01 would show by now
        [document] = self.documents()
        copy = self.base / "received.bin"
        fields = json_attachment_to_file(document, copy)
        assert fields["sha256"] == digest == sha256_of(copy)
        assert copy.read_bytes() == original.read_bytes()
        [status] = self.statuses_01()
        assert status["sender"]["organ_id"] == self.b.code

    def close(self) -> None:
        for p in self.adapters.values():
            p.stop()
        self.relay.stop()
        self.engine.dispose()


@pytest.fixture
def exchange(make_env: Any, tmp_path: Path) -> Iterator[Exchange]:
    world = Exchange(make_env(), tmp_path)
    try:
        yield world
    finally:
        world.close()


def test_the_relay_killed_mid_transfer_still_delivers_the_document_once_intact(
    exchange: Exchange,
) -> None:
    original, digest = exchange.send()
    wait_until(lambda: exchange.hub_bytes() >= 5 * MiB, timeout=120, interval=0.05)
    exchange.relay.kill()
    held = exchange.hub_bytes()
    assert held < SIZE, "the upload finished before the kill: make SIZE larger"
    exchange.relay = RelayProcess(exchange.settings)  # stopped by the fixture even if slow
    exchange.relay.start(timeout=120)
    exchange.arrives_once_intact(original, digest)


def test_the_recipients_adapter_killed_mid_transfer_still_hands_over_once_intact(
    exchange: Exchange,
) -> None:
    original, digest = exchange.send()
    parts = exchange.root(exchange.b) / ".lienthong-blobs" / "parts"

    def receiving() -> bool:
        return any(p.stat().st_size >= 3 * MiB for p in parts.glob("*.part"))

    wait_until(receiving, timeout=180, interval=0.05)
    adapter = exchange.adapters[exchange.b.code]
    adapter.kill()
    assert not exchange.documents()
    [part] = parts.glob("*.part")
    assert part.stat().st_size < SIZE, "the assembly finished before the kill: make SIZE larger"
    adapter.start()
    exchange.arrives_once_intact(original, digest)
    # and the restarted adapter lets the bytes go once the DMS folder has the document
    blobs = exchange.root(exchange.b) / ".lienthong-blobs"
    wait_until(
        lambda: not any(blobs.glob("in/*")) and not any(blobs.glob("parts/*")),
        timeout=60,
        interval=0.5,
    )
