"""The outbox side of the folder connector, without a broker: spool, sent/, rejected/."""

from __future__ import annotations

import os
import time
import tracemalloc
from pathlib import Path

import pytest
from click.testing import CliRunner
from structlog.testing import capture_logs

from adapters.cli import adapter
from adapters.config import AdapterConfig, parse_config
from adapters.files import move_no_clobber
from adapters.outbox import OutboxScanner, source_key
from adapters.spool import Spool
from schemas import decode_message
from schemas.envelope import encode_message
from tests.adapter_support import drop, make_document, make_status, visible_files

A = "000.00.00.G22"
B = "000.00.00.H41"


@pytest.fixture
def config(tmp_path: Path) -> AdapterConfig:
    cfg = parse_config(
        {"agency": A, "amqp_url": f"amqp://{A}:pw@127.0.0.1/x", "root": str(tmp_path / "root")}
    )
    cfg.ensure_folders()
    return cfg


@pytest.fixture
def spool(config: AdapterConfig) -> Spool:
    return Spool(config.spool_path)


def test_a_valid_file_is_spooled_then_moved_to_sent(config: AdapterConfig, spool: Spool) -> None:
    document = make_document(A, [B])
    drop(config.outbox, "cv.json", encode_message(document))
    [taken] = OutboxScanner(config, spool).scan_once()
    assert taken.entry is not None and taken.created
    assert [p.name for p in visible_files(config.sent_dir)] == ["cv.json"]
    [row] = spool.unsent(10)
    assert row.message_id == taken.entry.message_id
    assert row.message_type == "document"
    assert decode_message(row.body) == document


def test_dot_files_and_other_names_are_left_alone(config: AdapterConfig, spool: Spool) -> None:
    body = encode_message(make_document(A, [B]))
    (config.outbox / ".cv.json").write_bytes(body)  # still being written
    (config.outbox / "notes.txt").write_bytes(b"hello")
    (config.outbox / "folder.json").mkdir()
    assert OutboxScanner(config, spool).scan_once() == []
    assert spool.unsent(10) == []
    assert sorted(p.name for p in config.outbox.iterdir()) == [
        ".cv.json",
        "folder.json",
        "notes.txt",
        "rejected",
        "sent",
    ]


def test_a_malformed_file_is_rejected_with_an_error_file_naming_field_and_value(
    config: AdapterConfig, spool: Spool
) -> None:
    data = encode_message(make_status(B, A, "X,2026/11/24,1/ABC")).replace(b'"03"', b'"99"')
    drop(config.outbox, "bad-status.json", data)
    drop(config.outbox, "not-json.json", b"{oops")
    OutboxScanner(config, spool).scan_once()
    assert spool.unsent(10) == []
    names = sorted(p.name for p in visible_files(config.rejected_dir))
    assert names == [
        "bad-status.json",
        "bad-status.json.error.txt",
        "not-json.json",
        "not-json.json.error.txt",
    ]
    status_error = (config.rejected_dir / "bad-status.json.error.txt").read_text()
    assert "status_code" in status_error and "'99'" in status_error
    assert "not valid JSON" in (config.rejected_dir / "not-json.json.error.txt").read_text()


def test_a_file_already_spooled_before_a_crash_is_not_spooled_twice(
    config: AdapterConfig, spool: Spool
) -> None:
    data = encode_message(make_document(A, [B]))
    path = drop(config.outbox, "cv.json", data)
    scanner = OutboxScanner(config, spool)
    first = scanner.take(path)
    assert first is not None and first.entry is not None
    # The crash: the file was spooled but still lies in outbox/.
    os.link(first.moved_to, path)
    [again] = scanner.scan_once()
    assert again.entry is not None and not again.created
    assert again.entry.message_id == first.entry.message_id
    assert len(spool.unsent(10)) == 1
    assert spool.find_source(source_key("cv.json", data)) is not None


def test_name_clashes_in_sent_and_rejected_keep_every_earlier_file(
    config: AdapterConfig, spool: Spool
) -> None:
    scanner = OutboxScanner(config, spool)
    for i in range(3):
        drop(config.outbox, "cv.json", encode_message(make_document(A, [B], f"doc-{i}")))
        scanner.scan_once()
        drop(config.outbox, "x.json", b"[]")
        scanner.scan_once()
    assert sorted(p.name for p in visible_files(config.sent_dir)) == [
        "cv.1.json",
        "cv.2.json",
        "cv.json",
    ]
    assert len(visible_files(config.rejected_dir)) == 6
    assert [r.document_id for r in spool.unsent(10)] == ["doc-0", "doc-1", "doc-2"]


def test_move_no_clobber_never_overwrites(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.json").write_text("first")
    (tmp_path / "a.json").write_text("second")
    moved = move_no_clobber(tmp_path / "a.json", tmp_path / "d")
    assert moved.name == "a.1.json"
    assert (tmp_path / "d" / "a.json").read_text() == "first"


def test_a_file_left_under_a_temporary_name_is_warned_about_once(
    config: AdapterConfig, spool: Spool
) -> None:
    body = encode_message(make_document(A, [B]))
    stale = config.outbox / ".cv-cu.json.part"
    stale.write_bytes(body)
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    (config.outbox / ".cv-moi.json.part").write_bytes(body)  # still being written: no word
    scanner = OutboxScanner(config, spool)
    with capture_logs() as logs:
        scanner.scan_once()
        scanner.scan_once()
    warnings = [e for e in logs if e["event"] == "outbox.temp_file_stale"]
    assert [w["file"] for w in warnings] == [".cv-cu.json.part"]
    assert warnings[0]["log_level"] == "warning"
    assert "rename" in warnings[0]["action"]  # says what to do
    assert stale.exists()  # left alone: it is not the adapter's to take


def test_a_file_over_the_size_limit_is_refused_without_being_read(
    config: AdapterConfig, spool: Spool
) -> None:
    big = config.outbox / "big.json"
    with open(big, "wb") as f:
        f.truncate(70 * 1024 * 1024)  # sparse: 70 MB that take no disk
    scanner = OutboxScanner(config, spool)
    tracemalloc.start()
    try:
        [taken] = scanner.scan_once()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024, f"{peak} bytes allocated to refuse it"
    assert taken.entry is None and taken.error is not None
    assert spool.unsent(10) == []
    assert sorted(p.name for p in visible_files(config.rejected_dir)) == [
        "big.json",
        "big.json.error.txt",
    ]
    error = (config.rejected_dir / "big.json.error.txt").read_text()
    assert "73400320 bytes" in error and str(config.max_file_bytes) in error


def test_adapter_send_refuses_a_file_over_the_size_limit_without_reading_it(
    config: AdapterConfig, tmp_path: Path
) -> None:
    toml = tmp_path / "adapter.toml"
    toml.write_text(
        f'agency = "{A}"\namqp_url = "amqp://{A}:pw@127.0.0.1:1/x"\nroot = "{config.root}"\n'
    )
    big = tmp_path / "big.json"
    with open(big, "wb") as f:
        f.truncate(70 * 1024 * 1024)
    tracemalloc.start()
    try:
        result = CliRunner().invoke(
            adapter, ["send", str(big), "--config", str(toml), "--no-publish"]
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.exit_code == 1
    assert "big.json was not sent: file size: 73400320 bytes is over the limit" in result.output
    assert peak < 8 * 1024 * 1024, f"{peak} bytes allocated to refuse it"
