"""The received-item store: recorded once per kind, listed until taken, 01 when taken."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from adapters.arrival import reply_status_id
from adapters.received import NewItem, ReceivedStore, UnknownItem
from adapters.spool import Spool
from schemas import Status, decode_message
from schemas import topology as t
from schemas.envelope import encode_message
from tests.adapter_support import make_document, make_status

A = "000.00.00.G22"
B = "000.00.00.H41"
HOSTED = "000.01.00.H41"


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    return Spool(tmp_path / "spool.sqlite3")


@pytest.fixture
def store(spool: Spool) -> ReceivedStore:
    return ReceivedStore(spool)


def _document(message_id: str = "d-1", addressee: str = B) -> NewItem:
    document = make_document(A, [B, HOSTED], "A,2026/11/24,7/VPCP")
    return NewItem(
        t.TYPE_DOCUMENT,
        message_id,
        addressee,
        encode_message(document),
        document.document_id,
        {t.HEADER_RECIPIENT: addressee.encode()},
    )


def _status(message_id: str = "s-1") -> NewItem:
    return NewItem(t.TYPE_STATUS, message_id, B, encode_message(make_status(A, B, "D")), "D")


def test_a_copy_is_recorded_once_and_listed_until_taken(store: ReceivedStore) -> None:
    assert store.record([_document(), _document()]) == [True, False]
    assert store.record([_document()]) == [False]
    [item] = store.pending()
    assert (item.kind, item.message_id, item.addressee) == (t.TYPE_DOCUMENT, "d-1", B)
    assert item.headers == {t.HEADER_RECIPIENT: B}  # bytes headers kept as text
    assert item.message() == decode_message(_document().body)
    assert store.mark_taken(t.TYPE_DOCUMENT, "d-1", "test")
    assert store.pending() == []
    taken = store.get(t.TYPE_DOCUMENT, "d-1")
    assert taken is not None and taken.state == "taken" and taken.taken_by == "test"
    assert store.record([_document()]) == [False]  # still a copy once taken


def test_an_id_chosen_for_a_status_never_hides_a_document_with_the_same_id(
    store: ReceivedStore,
) -> None:
    assert store.record([_status("same")]) == [True]
    assert store.record([_document("same")]) == [True]
    assert [(i.kind, i.message_id) for i in store.pending()] == [
        (t.TYPE_STATUS, "same"),
        (t.TYPE_DOCUMENT, "same"),
    ]
    assert store.is_recorded(t.TYPE_RECEIPT, "same") is False


def test_taking_a_document_spools_its_status_01_once_from_the_addressee(
    store: ReceivedStore, spool: Spool
) -> None:
    store.record([_document(addressee=HOSTED), _status()])
    assert store.mark_taken(t.TYPE_STATUS, "s-1", "test")
    assert spool.unsent(10) == []  # statuses are not answered
    assert store.mark_taken(t.TYPE_DOCUMENT, "d-1", "test")
    assert not store.mark_taken(t.TYPE_DOCUMENT, "d-1", "test")  # an ack repeated
    [reply] = spool.unsent(10)
    assert reply.message_id == reply_status_id("d-1")
    status = decode_message(reply.body)
    assert isinstance(status, Status)
    assert (status.status_code, status.sender.organ_id) == ("01", HOSTED)
    assert status.response_for.organ_id == A
    assert status.response_for.document_id == "A,2026/11/24,7/VPCP"


def test_a_dms_that_sends_its_own_01_gets_none_from_the_adapter(
    store: ReceivedStore, spool: Spool
) -> None:
    store.record([_document()])
    assert store.mark_taken(t.TYPE_DOCUMENT, "d-1", "sdk", answer_01=False)
    assert spool.unsent(10) == []


def test_listing_filters_by_kind_and_time_and_pages(store: ReceivedStore) -> None:
    t0 = dt.datetime(2026, 11, 30, 8, 0, tzinfo=dt.UTC)
    for n in range(5):
        store.record([_document(f"d-{n}")], now=t0 + dt.timedelta(hours=n))
    store.record([_status()], now=t0)
    assert store.count_pending() == 6
    assert store.count_pending(t.TYPE_DOCUMENT) == 5
    page = store.pending(t.TYPE_DOCUMENT, offset=1, limit=2)
    assert [i.message_id for i in page] == ["d-1", "d-2"]
    window = store.pending(
        t.TYPE_DOCUMENT,
        received_from=t0 + dt.timedelta(hours=1),
        received_to=(t0 + dt.timedelta(hours=3)).astimezone(dt.timezone(dt.timedelta(hours=7))),
    )
    assert [i.message_id for i in window] == ["d-1", "d-2", "d-3"]
    assert [i.message_id for i in store.pending(after_seq=page[-1].seq)] == ["d-3", "d-4", "s-1"]
    assert window[0].received_at == t0 + dt.timedelta(hours=1)
    with pytest.raises(ValueError, match="kind"):
        store.pending("documents")


def test_a_failure_keeps_the_item_listed_with_its_reason(store: ReceivedStore) -> None:
    store.record([_document()])
    assert store.mark_failed(t.TYPE_DOCUMENT, "d-1", "sdk", "DMS: disk full")
    [item] = store.pending()
    assert (item.failures, item.last_error) == (1, "sdk: DMS: disk full")
    store.mark_taken(t.TYPE_DOCUMENT, "d-1", "sdk")
    assert not store.mark_failed(t.TYPE_DOCUMENT, "d-1", "sdk", "late")
    with pytest.raises(UnknownItem):
        store.mark_taken(t.TYPE_DOCUMENT, "nope", "sdk")
    with pytest.raises(UnknownItem):
        store.mark_failed(t.TYPE_STATUS, "d-1", "sdk", "wrong kind")


def test_an_item_listed_but_not_acked_before_a_restart_is_listed_again(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite3"
    with Spool(path) as spool:
        ReceivedStore(spool).record([_document()])
        [listed] = ReceivedStore(spool).pending()
    with Spool(path) as spool:  # the adapter restarted between listing and ack
        store = ReceivedStore(spool)
        [again] = store.pending()
        assert again.message_id == listed.message_id
        assert store.mark_taken(again.kind, again.message_id, "sdk")
        assert len(spool.unsent(10)) == 1


def test_a_spool_of_the_previous_version_keeps_its_delivery_ids(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE received (message_id TEXT PRIMARY KEY, message_type TEXT NOT NULL, "
        "path TEXT NOT NULL, received_at TEXT NOT NULL);"
        "INSERT INTO received VALUES ('d-1', 'document', '/x', '2026-11-29T17:00:00+07:00');"
    )
    db.close()
    with Spool(path) as spool:
        store = ReceivedStore(spool)
        assert store.record([_document("d-1")]) == [False]  # handed over before the upgrade
        assert store.pending() == []
        old = store.get(t.TYPE_DOCUMENT, "d-1")
        assert old is not None
        assert old.received_at == dt.datetime(2026, 11, 29, 10, 0, tzinfo=dt.UTC)
        [(stamp,)] = spool.read("SELECT received_at FROM received_items")
        assert stamp == "2026-11-29T10:00:00.000000Z"  # the store's own fixed-width form


def test_a_listing_can_leave_out_bodies_and_bound_them(store: ReceivedStore) -> None:
    for n in range(4):
        store.record([NewItem(t.TYPE_RECEIPT, f"r-{n}", B, b"x" * 1000)])
    listed = store.pending(with_body=False)
    assert [i.body for i in listed] == [b""] * 4
    got = store.get(t.TYPE_RECEIPT, "r-0")
    assert got is not None and got.body == b"x" * 1000  # kept
    assert [i.message_id for i in store.pending(max_bytes=2500)] == ["r-0", "r-1"]
    assert [i.message_id for i in store.pending(max_bytes=10)] == ["r-0"]  # one at least
    assert [i.message_id for i in store.pending(offset=1, max_bytes=2000)] == ["r-1", "r-2"]
