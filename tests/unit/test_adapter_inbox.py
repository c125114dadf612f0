"""Recording inbox deliveries in the received-item store: once per kind, or rejected."""

from __future__ import annotations

import ast
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from adapters.config import AdapterConfig, parse_config
from adapters.formats.base import FormatError
from adapters.inbox import Action, Delivery, InboxRecorder
from adapters.received import ReceivedStore
from adapters.spool import Spool, SpoolError
from schemas import Receipt, ReceiptKind, join_receipts
from schemas import topology as t
from schemas.envelope import encode_message
from tests.adapter_support import make_document, make_status, visible_files

A = "000.00.00.G22"
B = "000.00.00.H41"
HOSTED = "000.01.00.H41"


class BrokenSpool(Spool):
    """A spool whose writes fail, as on a full disk."""

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        raise SpoolError(f"spool {str(self.path)!r} cannot be written: database or disk is full")
        yield self._db  # pragma: no cover


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
def recorder(config: AdapterConfig, spool: Spool) -> InboxRecorder:
    return InboxRecorder(config, spool)


def _doc_delivery(recipient: str = B, message_id: str = "d-1") -> Delivery:
    body = encode_message(make_document(A, [B, HOSTED], "A,2026/11/24,7/VPCP"))
    return Delivery(message_id, t.TYPE_DOCUMENT, body, {t.HEADER_RECIPIENT: recipient})


def test_a_redelivered_document_is_recorded_once(
    recorder: InboxRecorder, store: ReceivedStore, spool: Spool, config: AdapterConfig
) -> None:
    assert recorder.handle(_doc_delivery()) is Action.ACK
    assert recorder.handle(_doc_delivery()) is Action.ACK
    [item] = store.pending()
    assert (item.kind, item.message_id, item.addressee) == (t.TYPE_DOCUMENT, "d-1", B)
    assert spool.unsent(10) == []  # the 01 waits until the DMS has the document
    assert visible_files(config.inbox_documents) == []  # a connector hands it over


def test_a_status_with_a_documents_id_does_not_make_the_document_a_duplicate(
    recorder: InboxRecorder, store: ReceivedStore
) -> None:
    # Issue 12, item 4: an agency can choose a status id equal to a delivery id it has seen.
    status = encode_message(make_status(A, B, "D"))
    assert recorder.handle(Delivery("d-1", t.TYPE_STATUS, status)) is Action.ACK
    assert recorder.handle(_doc_delivery(message_id="d-1")) is Action.ACK
    assert sorted(i.kind for i in store.pending()) == [t.TYPE_DOCUMENT, t.TYPE_STATUS]


def test_the_addressed_hosted_unit_is_recorded(
    recorder: InboxRecorder, store: ReceivedStore
) -> None:
    recorder.handle(_doc_delivery(recipient=HOSTED))
    [item] = store.pending()
    assert item.addressee == HOSTED
    assert item.document_id == "A,2026/11/24,7/VPCP"


def test_a_delivery_that_cannot_be_recorded_is_rejected_and_not_remembered(
    config: AdapterConfig, spool: Spool, store: ReceivedStore
) -> None:
    broken = InboxRecorder(config, BrokenSpool(config.spool_path))
    assert broken.handle(_doc_delivery()) is Action.REJECT
    assert not store.is_recorded(t.TYPE_DOCUMENT, "d-1")
    assert InboxRecorder(config, spool).handle(_doc_delivery()) is Action.ACK  # the retry


def test_an_unreadable_delivery_is_rejected(recorder: InboxRecorder) -> None:
    assert recorder.handle(Delivery("x", t.TYPE_DOCUMENT, b"{nope")) is Action.REJECT
    status = encode_message(make_status(A, B, "D"))
    assert recorder.handle(Delivery("y", t.TYPE_DOCUMENT, status)) is Action.REJECT


def test_a_delivery_the_connector_cannot_write_is_rejected(
    config: AdapterConfig, spool: Spool, store: ReceivedStore
) -> None:
    def check(_message: object, _headers: object) -> None:
        raise FormatError("edXML cannot express this")

    recorder = InboxRecorder(config, spool, check=check)
    assert recorder.handle(_doc_delivery()) is Action.REJECT
    assert store.pending() == []


def test_statuses_and_receipts_are_recorded_under_their_kind(
    recorder: InboxRecorder, store: ReceivedStore
) -> None:
    status = encode_message(make_status(A, B, "D"))
    assert recorder.handle(Delivery("s-1", t.TYPE_STATUS, status)) is Action.ACK
    receipt = b'{"schema": "lienthong.receipt/1", "kind": "accepted", "in_reply_to": "m"}'
    assert recorder.handle(Delivery("r-1", t.TYPE_RECEIPT, receipt)) is Action.ACK
    assert [(i.kind, i.message_id) for i in store.pending()] == [
        (t.TYPE_STATUS, "s-1"),
        (t.TYPE_RECEIPT, "r-1"),
    ]


def _receipt(in_reply_to: str) -> Receipt:
    return Receipt(kind=ReceiptKind.ACCEPTED, in_reply_to=in_reply_to, sender=B)


def test_receipts_that_come_together_are_recorded_each_under_its_own_id(
    recorder: InboxRecorder, store: ReceivedStore
) -> None:
    first, second, third = _receipt("m1"), _receipt("m2"), _receipt("m3")
    # the first came alone before (under its own id, as the relay sends a lone receipt)
    alone = Delivery(str(first.receipt_id), t.TYPE_RECEIPT, encode_message(first))
    assert recorder.handle(alone) is Action.ACK
    grouped = join_receipts([encode_message(r) for r in (first, second, third)])

    assert recorder.handle(Delivery("g-1", t.TYPE_RECEIPTS, grouped)) is Action.ACK
    assert recorder.handle(Delivery("g-2", t.TYPE_RECEIPTS, grouped)) is Action.ACK  # again

    pending = store.pending()
    assert [(i.kind, i.message_id) for i in pending] == [
        (t.TYPE_RECEIPT, str(r.receipt_id)) for r in (first, second, third)
    ]
    assert [i.body for i in pending] == [encode_message(r) for r in (first, second, third)]


def test_receipts_together_with_one_that_cannot_be_handed_over_are_all_rejected(
    config: AdapterConfig, spool: Spool, store: ReceivedStore
) -> None:
    def check(message: object, _headers: object) -> None:
        if isinstance(message, Receipt) and message.in_reply_to == "m2":
            raise FormatError("cannot write this one")

    recorder = InboxRecorder(config, spool, check=check)
    grouped = join_receipts([encode_message(_receipt(m)) for m in ("m1", "m2")])
    assert recorder.handle(Delivery("g-1", t.TYPE_RECEIPTS, grouped)) is Action.REJECT
    assert recorder.handle(Delivery("g-2", t.TYPE_RECEIPTS, b'{"schema": "x"}')) is Action.REJECT
    assert store.pending() == []


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


def test_a_batch_records_what_it_can_and_rejects_the_rest(
    recorder: InboxRecorder, store: ReceivedStore
) -> None:
    status = encode_message(make_status(A, B, "D"))
    woken: list[bool] = []
    recorder.on_recorded = lambda: woken.append(True)
    batch = [
        _doc_delivery(message_id="d-1"),
        Delivery("bad", t.TYPE_DOCUMENT, b"{nope"),
        _doc_delivery(message_id="d-1"),  # the same delivery twice in one batch
        Delivery("s-1", t.TYPE_STATUS, status),
    ]
    actions = recorder.handle_batch(batch)
    assert actions == [Action.ACK, Action.REJECT, Action.ACK, Action.ACK]
    assert [(i.kind, i.message_id) for i in store.pending()] == [
        (t.TYPE_DOCUMENT, "d-1"),
        (t.TYPE_STATUS, "s-1"),
    ]
    assert woken == [True]  # the connector is woken once per batch


def test_a_second_copy_in_the_same_batch_is_not_acked_when_the_first_was_not_recorded(
    config: AdapterConfig, store: ReceivedStore
) -> None:
    broken = InboxRecorder(config, BrokenSpool(config.spool_path))
    actions = broken.handle_batch([_doc_delivery(), _doc_delivery()])
    assert actions == [Action.REJECT, Action.REJECT]
    assert not store.is_recorded(t.TYPE_DOCUMENT, "d-1")


class _BatchesSeen(InboxRecorder):
    """The real recorder, remembering the size of every batch it was handed."""

    def __init__(self, config: AdapterConfig, spool: Spool) -> None:
        super().__init__(config, spool)
        self.batches: list[int] = []

    def handle_batch(self, deliveries: list[Delivery]) -> list[Action]:
        self.batches.append(len(deliveries))
        return super().handle_batch(deliveries)


class _Acks:
    """What the consumer says to the broker (the part of pika's channel it uses)."""

    def __init__(self) -> None:
        self.acked: list[int] = []

    def basic_ack(self, tag: int) -> None:
        self.acked.append(tag)

    def basic_reject(self, tag: int, requeue: bool) -> None:
        raise AssertionError(f"delivery {tag} rejected")


class _Method:
    def __init__(self, tag: int) -> None:
        self.delivery_tag = tag


class _Props:
    def __init__(self, message_id: str) -> None:
        self.message_id = message_id
        self.type = t.TYPE_DOCUMENT
        self.headers = {t.HEADER_RECIPIENT: B}


def test_inbox_deliveries_are_stored_and_acked_once_their_bytes_reach_the_batch_cap(
    config: AdapterConfig, spool: Spool, store: ReceivedStore
) -> None:
    from adapters.broker import InboxConsumer, InboxLanes

    body = _doc_delivery().body
    writer = _BatchesSeen(config, spool)
    acks = _Acks()
    ordinary = InboxConsumer(acks, writer, max_bytes=2 * len(body) + 1)
    lanes = InboxLanes(ordinary, None)
    for tag in range(1, 8):  # one round of the broker loop hands over seven deliveries
        ordinary.on_message(acks, _Method(tag), _Props(f"d-{tag}"), body)
    assert writer.batches == [3, 3]  # stored as soon as they passed the cap, not at the end
    assert acks.acked == [1, 2, 3, 4, 5, 6]
    lanes.flush()  # the end of the round: what is left
    assert writer.batches == [3, 3, 1] and acks.acked == list(range(1, 8))
    assert len(store.pending()) == 7
