"""Large documents travel in chunks (issue 17), end to end with real processes.

A relay and three adapters (A sends; B and C receive, JSON format) run on an environment of
their own. The adapters are configured to take the chunked path above 1 MiB, with 1 MiB
chunks, so a few-MiB attachment shows the whole protocol in seconds; the 200 MB and 1 GB runs
are in ``make bench`` (``tests/bench/bigdocs.py``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from relay.db.engine import make_engine
from tests.adapter_support import AdapterProcess, agency_url, write_config
from tests.bigdocs_support import json_attachment_to_file, random_file, sha256_of, write_package
from tests.relay_support import RelayProcess, add_agency, wait_until
from tests.services import random_code

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

MiB = 1024 * 1024
#: RabbitMQ 4.x's default ``max_message_size``.
RABBITMQ_4_MAX_MESSAGE = 16 * MiB
CHUNKED = {"chunk_threshold_bytes": MiB, "chunk_bytes": MiB, "chunk_retry_seconds": 3.0}


@dataclass
class Side:
    code: str
    folder: Path
    adapter: AdapterProcess

    @property
    def root(self) -> Path:
        return self.folder / "root"

    def documents(self) -> list[Path]:
        folder = self.root / "inbox" / "documents"
        return sorted(p for p in folder.glob("*.json")) if folder.is_dir() else []

    def statuses(self) -> list[dict[str, Any]]:
        folder = self.root / "inbox" / "statuses"
        if not folder.is_dir():
            return []
        return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


@dataclass
class World:
    a: Side
    b: Side
    c: Side
    relay: RelayProcess
    engine: Engine
    tmp: Path


@pytest.fixture(scope="module")
def world(make_env: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    settings = make_env()
    engine = make_engine(settings.database_url)
    codes = [random_code() for _ in range(3)]
    agencies = [add_agency(settings, engine, code) for code in codes]
    base = tmp_path_factory.mktemp("bigdocs")
    relay = RelayProcess(settings).start()
    sides: list[Side] = []
    try:
        relay.wait_consuming(codes)
        for agency in agencies:
            assert agency.password is not None
            folder = base / agency.code
            config = write_config(
                folder, agency.code, agency_url(settings), agency.password, **CHUNKED
            )
            process = AdapterProcess(config, folder / "adapter.log").start()
            sides.append(Side(agency.code, folder, process))
        yield World(*sides, relay=relay, engine=engine, tmp=base)
    finally:
        for side in sides:
            side.adapter.stop()
        relay.stop()
        engine.dispose()


def _send(world: World, size: int, number: str, recipients: list[Side]) -> tuple[Path, str]:
    original = world.tmp / f"scan-{number}.bin"
    digest = random_file(original, size)
    package = world.tmp / f".{number}.edxml"
    write_package(
        package,
        original,
        sender=world.a.code,
        recipients=[r.code for r in recipients],
        number=number,
    )
    outbox = world.a.root / "outbox"
    wait_until(outbox.is_dir, timeout=30, interval=0.1)
    package.rename(outbox / f"cong-van-{number}.edxml")
    return original, digest


def _received(world: World, side: Side, number: str) -> Path:
    def found() -> Path | None:
        for p in side.documents():
            if number in p.read_text(errors="replace")[:4096]:
                return p
        return None

    try:
        path: Path = wait_until(found, timeout=120, interval=0.5)
    except AssertionError:
        raise AssertionError(
            f"{side.code} never got document {number}:\n{side.adapter.log_text()[-3000:]}\n"
            f"A:\n{world.a.adapter.log_text()[-3000:]}\nrelay:\n{world.relay.log_text()[-3000:]}"
        ) from None
    return path


def test_a_large_attachment_arrives_byte_exact_at_each_recipient_with_01_back(
    world: World,
) -> None:
    original, digest = _send(world, 5 * MiB + 12345, "5001", [world.b, world.c])
    for side in (world.b, world.c):
        file = _received(world, side, "5001")
        copy = world.tmp / f"{side.code}-5001.bin"
        fields = json_attachment_to_file(file, copy)
        assert fields["sha256"] == digest
        assert fields["size"] == original.stat().st_size
        assert sha256_of(copy) == digest
        assert copy.read_bytes() == original.read_bytes()

    def both_01() -> bool:
        codes = {(s["sender"]["organ_id"], s["status_code"]) for s in world.a.statuses()}
        return {(world.b.code, "01"), (world.c.code, "01")} <= codes

    wait_until(both_01, timeout=60, interval=0.5)


def test_the_hub_stores_the_bytes_once_for_all_recipients_and_every_message_is_small(
    world: World,
) -> None:
    _send(world, 3 * MiB, "5002", [world.b, world.c])
    for side in (world.b, world.c):
        _received(world, side, "5002")
    with world.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT sha256, count(*), sum(length), max(size), max(length) FROM blob_chunks"
                " WHERE submitted_by = :a GROUP BY sha256"
            ),
            {"a": world.a.code},
        ).all()
        biggest_document = conn.execute(
            text("SELECT max(octet_length(payload)) FROM documents WHERE submitted_by = :a"),
            {"a": world.a.code},
        ).scalar_one()
    for _sha, count, stored, size, longest in rows:
        assert stored == size  # each attachment's bytes once, whatever the recipients
        assert count == -(-size // MiB)
        assert longest <= MiB
    # Every message on the way is a chunk (<= chunk_bytes + a header line) or a document
    # without its attachments' bytes: far below RabbitMQ 4.x's 16 MiB default.
    assert biggest_document < 64 * 1024 < RABBITMQ_4_MAX_MESSAGE


def test_no_adapter_keeps_the_attachment_once_the_relay_has_it_and_the_dms_has_the_document(
    world: World,
) -> None:
    _original, digest = _send(world, 2 * MiB + 1, "5003", [world.b])
    _received(world, world.b, "5003")

    def blob_files() -> list[str]:
        found = [
            world.a.root / ".lienthong-blobs" / "out" / digest,
            world.b.root / ".lienthong-blobs" / "in" / digest,
            *(world.b.root / ".lienthong-blobs" / "parts").glob(f"*{digest}*"),
        ]
        return [str(p) for p in found if p.exists()]

    # out/ goes when the relay's accepted receipt comes, in/ once the DMS folder has the file
    # (a sweep every 10 s in each adapter's broker thread)
    try:
        wait_until(lambda: not blob_files(), timeout=60, interval=0.5)
    except AssertionError:
        raise AssertionError(f"still there: {blob_files()}") from None
    receipts = [
        json.loads(p.read_text()) for p in (world.a.root / "inbox" / "receipts").glob("*.json")
    ]
    assert any(r["kind"] == "accepted" and r.get("document_id") for r in receipts)
