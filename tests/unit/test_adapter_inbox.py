"""Storing inbox deliveries for the DMS: once, atomically, answered by status 01."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from adapters.config import AdapterConfig, parse_config
from adapters.formats.json import JsonFormat
from adapters.inbox import Action, Delivery, InboxWriter, reply_status_id
from adapters.spool import Spool
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
def writer(config: AdapterConfig, spool: Spool) -> InboxWriter:
    return InboxWriter(config, spool, JsonFormat())


def _doc_delivery(recipient: str = B, message_id: str = "d-1") -> Delivery:
    body = encode_message(make_document(A, [B, HOSTED], "A,2026/11/24,7/VPCP"))
    return Delivery(message_id, t.TYPE_DOCUMENT, body, {t.HEADER_RECIPIENT: recipient})


def test_a_redelivered_document_is_handed_to_the_dms_once(
    writer: InboxWriter, config: AdapterConfig, spool: Spool
) -> None:
    assert writer.handle(_doc_delivery()) is Action.ACK
    assert writer.handle(_doc_delivery()) is Action.ACK
    assert [p.name for p in visible_files(config.inbox_documents)] == [f"{B}_d-1.json"]
    assert len(spool.unsent(10)) == 1  # one status 01, not two


def test_a_document_is_answered_with_status_01_from_the_addressed_hosted_unit(
    writer: InboxWriter, config: AdapterConfig, spool: Spool
) -> None:
    writer.handle(_doc_delivery(recipient=HOSTED))
    # The file name tells the DMS which unit the document is for.
    assert [p.name for p in visible_files(config.inbox_documents)] == [f"{HOSTED}_d-1.json"]
    [reply] = spool.unsent(10)
    assert reply.message_id == reply_status_id("d-1")
    assert reply.message_type == t.TYPE_STATUS
    status = decode_message(reply.body)
    assert isinstance(status, Status)
    assert status.status_code == "01"
    assert status.description == "Đã đến"
    assert status.sender.organ_id == HOSTED
    assert status.response_for.organ_id == A
    assert status.response_for.document_id == "A,2026/11/24,7/VPCP"


def test_a_delivery_that_cannot_be_written_is_rejected_and_not_remembered(
    writer: InboxWriter, config: AdapterConfig, spool: Spool
) -> None:
    with unwritable(config.inbox_documents):
        assert writer.handle(_doc_delivery()) is Action.REJECT
    assert not spool.is_received("d-1")
    assert spool.unsent(10) == []
    assert writer.handle(_doc_delivery()) is Action.ACK  # the relay's retry succeeds
    assert len(visible_files(config.inbox_documents)) == 1


def test_an_unreadable_delivery_is_rejected(writer: InboxWriter) -> None:
    assert writer.handle(Delivery("x", t.TYPE_DOCUMENT, b"{nope")) is Action.REJECT
    status = encode_message(make_status(A, B, "D"))
    assert writer.handle(Delivery("y", t.TYPE_DOCUMENT, status)) is Action.REJECT


def test_statuses_and_receipts_go_to_their_own_folders_without_a_reply(
    writer: InboxWriter, config: AdapterConfig, spool: Spool
) -> None:
    status = encode_message(make_status(A, B, "D"))
    assert writer.handle(Delivery("s-1", t.TYPE_STATUS, status)) is Action.ACK
    receipt = b'{"schema": "lienthong.receipt/1", "kind": "accepted", "in_reply_to": "m"}'
    assert writer.handle(Delivery("r-1", t.TYPE_RECEIPT, receipt)) is Action.ACK
    assert [p.name for p in visible_files(config.inbox_statuses)] == [f"{B}_s-1.json"]
    assert [p.name for p in visible_files(config.inbox_receipts)] == [f"{B}_r-1.json"]
    assert spool.unsent(10) == []


def test_the_adapter_package_imports_nothing_from_the_relay() -> None:
    root = Path(__file__).resolve().parents[2] / "adapters"
    offenders = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "relay"]
    assert offenders == []


def test_a_batch_stores_what_it_can_and_rejects_the_rest(
    writer: InboxWriter, config: AdapterConfig, spool: Spool
) -> None:
    status = encode_message(make_status(A, B, "D"))
    batch = [
        _doc_delivery(message_id="d-1"),
        Delivery("bad", t.TYPE_DOCUMENT, b"{nope"),
        _doc_delivery(message_id="d-1"),  # the same delivery twice in one batch
        Delivery("s-1", t.TYPE_STATUS, status),
    ]
    with unwritable(config.inbox_statuses):
        actions = writer.handle_batch(batch)
    assert actions == [Action.ACK, Action.REJECT, Action.ACK, Action.REJECT]
    assert [p.name for p in visible_files(config.inbox_documents)] == [f"{B}_d-1.json"]
    assert spool.is_received("d-1") and not spool.is_received("s-1")
    assert len(spool.unsent(10)) == 1


def test_a_second_copy_in_the_same_batch_is_not_acked_when_the_first_was_not_stored(
    writer: InboxWriter, config: AdapterConfig, spool: Spool
) -> None:
    with unwritable(config.inbox_documents):
        actions = writer.handle_batch([_doc_delivery(), _doc_delivery()])
    assert actions == [Action.REJECT, Action.REJECT]
    assert not spool.is_received("d-1")
