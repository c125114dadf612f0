"""The SQLite spool: order, sent marks, remembered deliveries."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.spool import NewMessage, Spool


def _msg(n: int, key: str | None = None) -> NewMessage:
    return NewMessage(f"m-{n}", "document", f"body {n}".encode(), f"doc-{n}", key)


def test_unsent_rows_come_back_in_spool_order_until_marked_sent(tmp_path: Path) -> None:
    with Spool(tmp_path / "s.sqlite3") as spool:
        for n in range(5):
            spool.add(_msg(n))
        rows = spool.unsent(3)
        assert [r.message_id for r in rows] == ["m-0", "m-1", "m-2"]
        spool.mark_sent([rows[0].seq, rows[1].seq])
        assert [r.message_id for r in spool.unsent(10)] == ["m-2", "m-3", "m-4"]
        sent = spool.get("m-0")
        assert sent is not None and sent.sent_at is not None and sent.body == b""


def test_the_same_source_is_spooled_once_and_survives_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    with Spool(path) as spool:
        first, created = spool.add(_msg(1, key="cv.json:abc"))
        assert created
    with Spool(path) as spool:
        again, created = spool.add(_msg(2, key="cv.json:abc"))
        assert not created and again.message_id == first.message_id
        assert spool.count_unsent() == 1


def test_a_transaction_that_fails_spools_nothing(tmp_path: Path) -> None:
    with Spool(tmp_path / "s.sqlite3") as spool:
        with pytest.raises(RuntimeError), spool.transaction() as db:
            Spool.insert(db, _msg(1))
            raise RuntimeError("the rest of the transaction failed")
        assert spool.unsent(10) == []
        with spool.transaction() as db:
            Spool.insert(db, _msg(1))
            Spool.insert(db, _msg(1))  # a known message id is kept, not doubled
        assert [r.message_id for r in spool.unsent(10)] == ["m-1"]


def test_a_round_of_unsent_rows_is_capped_by_bytes_the_first_row_always_going(
    tmp_path: Path,
) -> None:
    with Spool(tmp_path / "s.sqlite3") as spool:
        for n, size in enumerate((3000, 4000, 2000, 100)):
            spool.add(NewMessage(f"m-{n}", "document", b"x" * size, f"doc-{n}"))
        assert [r.message_id for r in spool.unsent(10, max_bytes=7000)] == ["m-0", "m-1"]
        assert [r.message_id for r in spool.unsent(10, max_bytes=9100)] == [
            "m-0",
            "m-1",
            "m-2",
            "m-3",
        ]
        assert [r.message_id for r in spool.unsent(1, max_bytes=9100)] == ["m-0"]
        # a row larger than the cap still goes, alone, so nothing is stuck behind it
        assert [r.message_id for r in spool.unsent(10, max_bytes=1024)] == ["m-0"]
        spool.mark_sent([r.seq for r in spool.unsent(2)])
        assert [r.message_id for r in spool.unsent(10, max_bytes=2100)] == ["m-2", "m-3"]
