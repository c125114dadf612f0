"""The folder connector's hand-over: each received item becomes one file, once, across crashes."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from adapters.arrival import reply_status_id
from adapters.config import AdapterConfig, parse_config
from adapters.formats.edxml import EdxmlFormat
from adapters.formats.json import JsonFormat
from adapters.handover import FolderHandOver, temp_name
from adapters.received import NewItem, ReceivedStore
from adapters.spool import Spool, SpoolError
from schemas import Status, decode_message
from schemas import topology as t
from schemas.envelope import encode_message
from tests.adapter_support import make_document, make_status, unwritable, visible_files

A = "000.00.00.G22"
B = "000.00.00.H41"
HOSTED = "000.01.00.H41"


@pytest.fixture
def config(tmp_path: Path) -> AdapterConfig:
    cfg = parse_config(
        {"agency": B, "amqp_url": f"amqp://{B}:pw@127.0.0.1/x", "root": str(tmp_path / "root")}
    )
    cfg.ensure_folders()
    return cfg


@pytest.fixture
def spool(config: AdapterConfig) -> Spool:
    return Spool(config.spool_path)


@pytest.fixture
def store(spool: Spool) -> ReceivedStore:
    return ReceivedStore(spool)


@pytest.fixture
def folder(config: AdapterConfig, store: ReceivedStore) -> FolderHandOver:
    return FolderHandOver(config, store, JsonFormat())


def _document(message_id: str = "d-1", addressee: str = B) -> NewItem:
    document = make_document(A, [B, HOSTED], f"A,2026/11/24,{message_id}/VPCP")
    return NewItem(
        t.TYPE_DOCUMENT,
        message_id,
        addressee,
        encode_message(document),
        document.document_id,
        {t.HEADER_RECIPIENT: addressee},
    )


def test_each_item_is_handed_over_once_and_a_document_answered_once(
    folder: FolderHandOver, store: ReceivedStore, spool: Spool, config: AdapterConfig
) -> None:
    receipt = b'{"schema": "lienthong.receipt/1", "kind": "accepted", "in_reply_to": "m"}'
    store.record(
        [
            _document(addressee=HOSTED),
            NewItem(t.TYPE_STATUS, "s-1", B, encode_message(make_status(A, B, "D"))),
            NewItem(t.TYPE_RECEIPT, "r-1", B, receipt),
        ]
    )
    assert folder.hand_over_pending() == 3
    assert folder.hand_over_pending() == 0
    # The file name tells the DMS which unit the document is for.
    assert [p.name for p in visible_files(config.inbox_documents)] == [f"{HOSTED}_d-1.json"]
    assert [p.name for p in visible_files(config.inbox_statuses)] == [f"{B}_s-1.json"]
    assert [p.name for p in visible_files(config.inbox_receipts)] == [f"{B}_r-1.json"]
    assert [p.name for p in config.inbox_documents.iterdir()] == [f"{HOSTED}_d-1.json"]
    [reply] = spool.unsent(10)  # statuses and receipts are not answered
    assert reply.message_id == reply_status_id("d-1")
    status = decode_message(reply.body)
    assert isinstance(status, Status)
    assert (status.status_code, status.description) == ("01", "Đã đến")
    assert status.sender.organ_id == HOSTED
    assert store.pending() == []
    taken = store.get(t.TYPE_DOCUMENT, "d-1")
    assert taken is not None and taken.taken_by == "folder" and taken.body == b""


def test_edxml_documents_carry_the_relays_route(
    config: AdapterConfig, store: ReceivedStore
) -> None:
    hub = "000.00.00.K99"
    item = _document()
    store.record([NewItem(**{**item.__dict__, "headers": {t.HEADER_SENDER: hub}})])
    FolderHandOver(config, store, EdxmlFormat()).hand_over_pending()
    [path] = visible_files(config.inbox_documents)
    assert path.name == f"{B}_d-1.edxml"
    assert hub.encode() in path.read_bytes()  # the route, from the delivery's stored headers


def test_a_crash_after_the_intent_and_before_the_rename_is_finished_on_start(
    folder: FolderHandOver, store: ReceivedStore, spool: Spool, config: AdapterConfig
) -> None:
    store.record([_document()])
    [item] = store.pending()
    (config.inbox_documents / temp_name(item.seq)).write_bytes(b"{}")  # step 1 done
    store.begin_hand_over([(item.seq, f"{B}_d-1.json")])  # step 2 done, then killed
    assert folder.recover() == 1
    assert [p.name for p in config.inbox_documents.iterdir()] == [f"{B}_d-1.json"]
    assert store.pending() == []
    assert len(spool.unsent(10)) == 1
    assert folder.hand_over_pending() == 0


def test_a_crash_after_the_rename_never_writes_the_file_again(
    folder: FolderHandOver, store: ReceivedStore, spool: Spool, config: AdapterConfig
) -> None:
    store.record([_document()])
    [item] = store.pending()
    store.begin_hand_over([(item.seq, f"{B}_d-1.json")])  # renamed, then killed; the DMS
    # took the file already, so nothing of it is left in the folder
    assert folder.recover() == 1
    assert folder.hand_over_pending() == 0
    assert list(config.inbox_documents.iterdir()) == []
    assert store.pending() == []
    assert len(spool.unsent(10)) == 1  # the 01 still leaves, once


def test_a_crash_before_the_intent_writes_the_item_from_the_start(
    folder: FolderHandOver, store: ReceivedStore, config: AdapterConfig
) -> None:
    store.record([_document()])
    [item] = store.pending()
    (config.inbox_documents / temp_name(item.seq)).write_bytes(b"half")  # killed in step 1
    assert folder.recover() == 0
    assert list(config.inbox_documents.iterdir()) == []  # the temporary file is gone
    assert folder.hand_over_pending() == 1
    [path] = visible_files(config.inbox_documents)
    assert decode_message(path.read_bytes()).document_id == "A,2026/11/24,d-1/VPCP"


def test_a_folder_that_cannot_be_written_is_reported_once_and_nothing_is_lost(
    folder: FolderHandOver, store: ReceivedStore, spool: Spool, config: AdapterConfig
) -> None:
    store.record([_document("d-1"), _document("d-2")])
    with unwritable(config.inbox_documents), capture_logs() as logs:
        assert folder.hand_over_pending() == 0
        assert folder.hand_over_pending() == 0
    failures = [e for e in logs if e["event"] == "inbox.hand_over_failed"]
    assert len(failures) == 1
    assert failures[0]["pending"] == 2 and "writable" in failures[0]["action"]
    assert spool.unsent(10) == []  # no 01 for what the DMS does not have
    with capture_logs() as logs:
        assert folder.hand_over_pending() == 2
    assert "inbox.hand_over_resumed" in [e["event"] for e in logs]
    assert len(visible_files(config.inbox_documents)) == 2
    assert len(spool.unsent(10)) == 2


def test_an_item_that_cannot_be_rendered_is_logged_once_and_does_not_block_the_rest(
    config: AdapterConfig, store: ReceivedStore
) -> None:
    class Picky(JsonFormat):
        def write_status(self, status: Status) -> bytes:
            raise ValueError("this format cannot write statuses")

    store.record(
        [
            NewItem(t.TYPE_STATUS, f"s-{n}", B, encode_message(make_status(A, B, "D")))
            for n in range(60)  # more than one batch
        ]
        + [_document()]
    )
    folder = FolderHandOver(config, store, Picky())
    with capture_logs() as logs:
        assert folder.hand_over_pending() == 1
        assert folder.hand_over_pending() == 0
    assert [e["event"] for e in logs].count("inbox.render_failed") == 60
    assert len(visible_files(config.inbox_documents)) == 1
    assert store.count_pending(t.TYPE_STATUS) == 60


class FlakySpool(Spool):
    """A spool whose writes fail while ``full`` is set, as on a full disk."""

    full = False

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        if self.full:
            raise SpoolError(f"spool {str(self.path)!r} cannot be written: disk is full")
        with super().transaction() as db:
            yield db


def test_a_spool_that_cannot_be_written_is_reported_once_and_nothing_shows_twice(
    config: AdapterConfig, spool: Spool
) -> None:
    ReceivedStore(spool).record([_document("d-1")])
    flaky = FlakySpool(config.spool_path)
    folder = FolderHandOver(config, ReceivedStore(flaky), JsonFormat())
    flaky.full = True
    with capture_logs() as logs:
        assert folder.hand_over_pending() == 0
        assert folder.hand_over_pending() == 0
    assert [e["event"] for e in logs].count("inbox.hand_over_failed") == 1
    assert visible_files(config.inbox_documents) == []  # not visible before its intent
    flaky.full = False
    assert folder.hand_over_pending() == 1
    assert [p.name for p in config.inbox_documents.iterdir()] == [f"{B}_d-1.json"]


def test_a_message_id_unfit_for_a_file_name_never_leaves_the_folder_or_hides_the_file(
    folder: FolderHandOver, store: ReceivedStore, config: AdapterConfig
) -> None:
    receipt = b'{"schema": "lienthong.receipt/1", "kind": "accepted", "in_reply_to": "m"}'
    store.record(
        [
            NewItem(t.TYPE_RECEIPT, "../../outbox/x", B, receipt),
            NewItem(t.TYPE_RECEIPT, ".hidden", ".00.00.H41", receipt),
        ]
    )
    assert folder.hand_over_pending() == 2
    names = sorted(p.name for p in config.inbox_receipts.iterdir())
    assert len(names) == 2 and all(n.startswith(f"{B}_id-") for n in names), names
    assert visible_files(config.outbox) == []
