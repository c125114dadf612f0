"""The received-item store: every inbox message, kept until a connector has given it to the DMS.

The broker side records each inbox message here (one transaction per batch) **before** it acks
it; a connector then takes items from the store and tells the store when the DMS has one.

Interface (stable; the SDK connector of issue 15 builds on it)::

    store = ReceivedStore(spool)                      # one per thread, like the Spool
    store.record([NewItem(...), ...]) -> [bool]       # broker side: True = new, False = a copy
    store.is_recorded(kind, message_id) -> bool
    store.get(kind, message_id) -> ReceivedItem | None
    store.get_by_seq(seq) -> ReceivedItem | None
    store.pending(kind=None, *, received_from=None, received_to=None, after_seq=0,
                  offset=0, limit=100, with_body=True, max_bytes=None) -> [ReceivedItem]
    store.count_pending(kind=None, *, received_from=None, received_to=None) -> int
    store.mark_taken(kind, message_id, connector, *, answer_01=True) -> bool
    store.mark_failed(kind, message_id, connector, reason) -> bool

Semantics:

* ``kind`` is the message type: ``"document"``, ``"status"`` or ``"receipt"``
  (:data:`KINDS`). Items are unique per ``(kind, message_id)``: a redelivered copy is recorded
  once, and an id used by a status never hides a document with the same id (issue 12, item 4).
* An item is ``pending`` until :meth:`ReceivedStore.mark_taken`; then ``taken`` for ever
  (``pending`` never lists it again). ``mark_taken`` returns True the first time, False for an
  item already taken (an ack repeated after a crash is harmless); :class:`UnknownItem` for an
  item that was never recorded.
* ``mark_taken(..., answer_01=True)`` on a document spools the automatic status 01 (Đã đến) in
  the same transaction, so the 01 leaves exactly when the DMS has the document, once (its
  message id is derived from the delivery's). Pass ``answer_01=False`` when the DMS sends its
  own 01. Statuses and receipts are never answered.
* ``mark_failed`` records that the DMS could not take an item (``failures``, ``last_error``);
  it stays pending and listed. It returns False (and changes nothing) for an item already taken.
* Nothing is lost across a restart: an item listed but not yet marked taken is listed again.
* Times are UTC; ``received_from``/``received_to`` bound ``received_at`` (inclusive).

The folder connector's crash-safe hand-over (:mod:`adapters.handover`) also uses
:meth:`ReceivedStore.begin_hand_over` and :meth:`ReceivedStore.handing_over` to record the
intent of a hand-over between writing its temporary file and renaming it into ``inbox/``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import structlog

from adapters.arrival import arrival_status, reply_status_id
from adapters.spool import NewMessage, Spool
from schemas import Document, Receipt, Status
from schemas import topology as t
from schemas.envelope import InvalidMessage, decode_message, encode_message
from schemas.errors import NotFound

log = structlog.get_logger()

#: The kinds of received items: the inbox message types.
KINDS: Final = (t.TYPE_DOCUMENT, t.TYPE_STATUS, t.TYPE_RECEIPT)
PENDING: Final = "pending"
TAKEN: Final = "taken"

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # fixed width, so text order is time order


class UnknownItem(NotFound, LookupError):
    """No received item has this kind and message id."""


def _stamp(when: dt.datetime) -> str:
    if when.tzinfo is None:
        raise ValueError("received-item times must be timezone-aware")
    return when.astimezone(dt.UTC).strftime(_TIME_FORMAT)


def _parse(text: object) -> dt.datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return dt.datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=dt.UTC)
    except ValueError:  # rows migrated from the old ``received`` table
        return dt.datetime.fromisoformat(text)


def json_headers(headers: Mapping[str, object]) -> dict[str, object]:
    """AMQP headers as JSON values (bytes decoded, anything unusual as text)."""
    out: dict[str, object] = {}
    for name, value in headers.items():
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        elif value is not None and not isinstance(value, str | int | float | bool):
            value = str(value)
        out[str(name)] = value
    return out


@dataclass(frozen=True)
class NewItem:
    """An inbox message to record."""

    kind: str
    message_id: str
    addressee: str
    body: bytes
    document_id: str | None = None
    headers: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class ReceivedItem:
    """One recorded inbox message."""

    seq: int  # order of arrival, unique in this adapter's store
    kind: str
    message_id: str
    addressee: str
    document_id: str | None
    headers: Mapping[str, object]
    body: bytes  # empty once the folder connector handed it over (the file holds it)
    received_at: dt.datetime
    state: str  # PENDING | TAKEN
    taken_at: dt.datetime | None
    taken_by: str | None
    failures: int
    last_error: str | None
    handing: str | None = None  # folder connector: temporary file of a hand-over under way

    def message(self) -> Document | Status | Receipt:
        """The message, parsed (it was validated when recorded)."""
        return decode_message(self.body, expect=self.kind)


_COLUMNS = (
    "seq, kind, message_id, addressee, document_id, headers, body, received_at, state, "
    "taken_at, taken_by, failures, last_error, handing"
)


def _item(row: tuple[object, ...]) -> ReceivedItem:
    (seq, kind, message_id, addressee, document_id, headers, body, received_at, state) = row[:9]
    taken_at, taken_by, failures, last_error, handing = row[9:]
    assert isinstance(seq, int) and isinstance(kind, str) and isinstance(message_id, str)
    assert isinstance(addressee, str) and isinstance(body, bytes) and isinstance(state, str)
    assert isinstance(headers, str) and isinstance(failures, int)
    received = _parse(received_at)
    assert received is not None
    return ReceivedItem(
        seq=seq,
        kind=kind,
        message_id=message_id,
        addressee=addressee,
        document_id=document_id if isinstance(document_id, str) else None,
        headers=json.loads(headers),
        body=body,
        received_at=received,
        state=state,
        taken_at=_parse(taken_at),
        taken_by=taken_by if isinstance(taken_by, str) else None,
        failures=failures,
        last_error=last_error if isinstance(last_error, str) else None,
        handing=handing if isinstance(handing, str) else None,
    )


def _check_kind(kind: str | None) -> None:
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind: {kind!r} is not one of {', '.join(KINDS)}")


class ReceivedStore:
    """The received items in the adapter's SQLite file; SpoolError when it cannot be used.

    Like :class:`~adapters.spool.Spool`, one instance per thread.
    """

    def __init__(self, spool: Spool) -> None:
        self.spool = spool

    # the broker side
    def record(self, items: Sequence[NewItem], now: dt.datetime | None = None) -> list[bool]:
        """Record inbox messages in one durable transaction; True for each one new, False for
        a copy of an item already recorded (same kind and message id, also within ``items``)."""
        for item in items:
            _check_kind(item.kind)
        at = _stamp(now or dt.datetime.now(dt.UTC))
        created: list[bool] = []
        with self.spool.transaction() as db:
            for item in items:
                cursor = db.execute(
                    "INSERT INTO received_items (kind, message_id, addressee, document_id, "
                    "headers, body, received_at, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (kind, message_id) DO NOTHING",
                    (
                        item.kind,
                        item.message_id,
                        item.addressee,
                        item.document_id,
                        json.dumps(json_headers(item.headers), ensure_ascii=False),
                        item.body,
                        at,
                        PENDING,
                    ),
                )
                created.append(cursor.rowcount == 1)
        return created

    def is_recorded(self, kind: str, message_id: str) -> bool:
        return bool(
            self.spool.read(
                "SELECT 1 FROM received_items WHERE kind = ? AND message_id = ?",
                (kind, message_id),
            )
        )

    # reading
    def get(self, kind: str, message_id: str) -> ReceivedItem | None:
        rows = self.spool.read(
            f"SELECT {_COLUMNS} FROM received_items WHERE kind = ? AND message_id = ?",
            (kind, message_id),
        )
        return _item(rows[0]) if rows else None

    def get_by_seq(self, seq: int) -> ReceivedItem | None:
        rows = self.spool.read(f"SELECT {_COLUMNS} FROM received_items WHERE seq = ?", (seq,))
        return _item(rows[0]) if rows else None

    @staticmethod
    def _filter(
        kind: str | None, received_from: dt.datetime | None, received_to: dt.datetime | None
    ) -> tuple[str, list[object]]:
        _check_kind(kind)
        where = ["state = ?"]
        params: list[object] = [PENDING]
        if kind is not None:
            where.append("kind = ?")
            params.append(kind)
        if received_from is not None:
            where.append("received_at >= ?")
            params.append(_stamp(received_from))
        if received_to is not None:
            where.append("received_at <= ?")
            params.append(_stamp(received_to))
        return " AND ".join(where), params

    def pending(
        self,
        kind: str | None = None,
        *,
        received_from: dt.datetime | None = None,
        received_to: dt.datetime | None = None,
        after_seq: int = 0,
        offset: int = 0,
        limit: int = 100,
        with_body: bool = True,
        max_bytes: int | None = None,
    ) -> list[ReceivedItem]:
        """Items not yet taken, oldest first: ``limit`` of them after ``offset`` (paging), only
        those with ``seq > after_seq``.

        ``with_body=False`` leaves ``body`` empty (a listing needs no bodies; :meth:`get` has
        it). ``max_bytes`` stops before the item whose body would take the total over it (the
        first item is always returned), so that a batch of large documents stays small.
        """
        where, params = self._filter(kind, received_from, received_to)
        columns = _COLUMNS if with_body else _COLUMNS.replace(" body,", " X'',")
        if max_bytes is not None:
            # length() of a BLOB comes from the record header, without reading the body.
            sizes = self.spool.read(
                f"SELECT seq, length(body) FROM received_items WHERE {where} AND seq > ? "
                "ORDER BY seq LIMIT ? OFFSET ?",
                [*params, after_seq, limit, offset],
            )
            total, last = 0, None
            for seq, size in sizes:
                assert isinstance(seq, int) and isinstance(size, int)
                if last is not None and total + size > max_bytes:
                    break
                total, last = total + size, seq
            if last is None:
                return []
            where += " AND seq <= ?"
            params.append(last)
        rows = self.spool.read(
            f"SELECT {columns} FROM received_items WHERE {where} AND seq > ? "
            "ORDER BY seq LIMIT ? OFFSET ?",
            [*params, after_seq, limit, offset],
        )
        return [_item(r) for r in rows]

    def count_pending(
        self,
        kind: str | None = None,
        *,
        received_from: dt.datetime | None = None,
        received_to: dt.datetime | None = None,
    ) -> int:
        where, params = self._filter(kind, received_from, received_to)
        [(n,)] = self.spool.read(f"SELECT count(*) FROM received_items WHERE {where}", params)
        assert isinstance(n, int)
        return n

    # the connectors
    def mark_taken(
        self, kind: str, message_id: str, connector: str, *, answer_01: bool = True
    ) -> bool:
        """The DMS has this item: never list it again; a document is answered by status 01 in
        the same transaction (unless ``answer_01`` is False). False if it was already taken."""
        [done] = self.mark_taken_many([(kind, message_id)], connector, answer_01=answer_01)
        return done

    def mark_taken_many(
        self,
        keys: Sequence[tuple[str, str]],
        connector: str,
        *,
        answer_01: bool = True,
        drop_body: bool = False,
        now: dt.datetime | None = None,
    ) -> list[bool]:
        """:meth:`mark_taken` for many items in one transaction; ``drop_body`` empties the
        stored bodies (the folder connector's files hold them)."""
        at = _stamp(now or dt.datetime.now(dt.UTC))
        done: list[bool] = []
        with self.spool.transaction() as db:
            for kind, message_id in keys:
                row = db.execute(
                    "SELECT state, addressee, body FROM received_items "
                    "WHERE kind = ? AND message_id = ?",
                    (kind, message_id),
                ).fetchone()
                if row is None:
                    raise UnknownItem(f"no received {kind} has the message id {message_id!r}")
                state, addressee, body = row
                if state == TAKEN:
                    done.append(False)
                    continue
                if answer_01 and kind == t.TYPE_DOCUMENT:
                    reply = self._arrival(message_id, addressee, body)
                    if reply is not None:
                        Spool.insert(db, reply)
                db.execute(
                    "UPDATE received_items SET state = ?, taken_at = ?, taken_by = ?, "
                    "handing = NULL" + (", body = X''" if drop_body else "") + " "
                    "WHERE kind = ? AND message_id = ?",
                    (TAKEN, at, connector, kind, message_id),
                )
                done.append(True)
        return done

    @staticmethod
    def _arrival(message_id: str, addressee: str, body: bytes) -> NewMessage | None:
        try:
            document = decode_message(body, expect=t.TYPE_DOCUMENT)
        except InvalidMessage as e:  # validated when recorded; only a schema change gets here
            log.error("inbox.reply_failed", message_id=message_id, reason=str(e))
            return None
        assert isinstance(document, Document)
        return NewMessage(
            message_id=reply_status_id(message_id),
            message_type=t.TYPE_STATUS,
            body=encode_message(arrival_status(document, addressee)),
            document_id=document.document_id,
        )

    def mark_failed(self, kind: str, message_id: str, connector: str, reason: str) -> bool:
        """The DMS could not take this item: count it, keep the reason, keep it pending.
        False (nothing changed) if it was already taken."""
        with self.spool.transaction() as db:
            row = db.execute(
                "SELECT state FROM received_items WHERE kind = ? AND message_id = ?",
                (kind, message_id),
            ).fetchone()
            if row is None:
                raise UnknownItem(f"no received {kind} has the message id {message_id!r}")
            if row[0] == TAKEN:
                return False
            db.execute(
                "UPDATE received_items SET failures = failures + 1, last_error = ? "
                "WHERE kind = ? AND message_id = ?",
                (f"{connector}: {reason}", kind, message_id),
            )
        return True

    # the folder connector's hand-over protocol
    def begin_hand_over(self, intents: Sequence[tuple[int, str]]) -> None:
        """Record, durably, that each item ``seq`` is about to be renamed from the temporary file
        ``name`` (already written and fsynced) into ``inbox/``."""
        with self.spool.transaction() as db:
            db.executemany(
                "UPDATE received_items SET handing = ? WHERE seq = ? AND state = ?",
                [(name, seq, PENDING) for seq, name in intents],
            )

    def handing_over(self) -> list[ReceivedItem]:
        """Pending items whose hand-over was begun: a crash may have come before or after the
        rename."""
        rows = self.spool.read(
            f"SELECT {_COLUMNS} FROM received_items WHERE state = ? AND handing IS NOT NULL "
            "ORDER BY seq",
            (PENDING,),
        )
        return [_item(r) for r in rows]
