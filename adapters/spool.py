"""The store-and-forward spool: SQLite in the folder root (WAL, ``synchronous=FULL``).

``outgoing`` holds every submission the DMS handed over, in the order it was taken, until the
broker confirmed it; ``received_items`` is the received-item store (:mod:`adapters.received`):
every inbox message, kept until a connector has handed it to the DMS. Both live in one file so
that the status 01 answering a document is spooled in the same transaction that marks the
document taken.

Each thread opens its own :class:`Spool` (an SQLite connection is not shared between threads).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from schemas.errors import LienthongError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outgoing (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id   TEXT NOT NULL UNIQUE,
    source_key   TEXT UNIQUE,            -- file name + SHA-256 of its content, when from a file
    message_type TEXT NOT NULL,          -- 'document' | 'status'
    document_id  TEXT,
    body         BLOB NOT NULL,
    spooled_at   TEXT NOT NULL,
    sent_at      TEXT                    -- set once the broker confirmed the publish
);
CREATE INDEX IF NOT EXISTS outgoing_unsent ON outgoing (seq) WHERE sent_at IS NULL;
CREATE TABLE IF NOT EXISTS received_items (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind         TEXT NOT NULL,          -- 'document' | 'status' | 'receipt'
    message_id   TEXT NOT NULL,          -- the delivery's message id; unique per kind
    addressee    TEXT NOT NULL,          -- the agency or hosted unit it is for
    document_id  TEXT,
    headers      TEXT NOT NULL,          -- the delivery's AMQP headers (JSON object)
    body         BLOB NOT NULL,          -- the message as delivered (wire JSON)
    received_at  TEXT NOT NULL,
    state        TEXT NOT NULL,          -- 'pending' | 'taken'
    handing      TEXT,                   -- folder connector: the temporary file of a hand-over
    taken_at     TEXT,
    taken_by     TEXT,                   -- the connector that handed it over
    failures     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    UNIQUE (kind, message_id)
);
CREATE INDEX IF NOT EXISTS received_items_pending
    ON received_items (kind, seq) WHERE state = 'pending';
"""

# Spools written before the received-item store kept only the ids of deliveries already
# written as files: they become items taken by the folder connector (still deduplicated).
_MIGRATE_RECEIVED = """
INSERT INTO received_items (kind, message_id, addressee, headers, body, received_at, state,
                            taken_at, taken_by)
    SELECT message_type, message_id, '', '{}', X'', strftime('%Y-%m-%dT%H:%M:%f', received_at)
           || '000Z', 'taken', strftime('%Y-%m-%dT%H:%M:%f', received_at) || '000Z', 'folder'
    FROM received WHERE true
    ON CONFLICT (kind, message_id) DO NOTHING;
DROP TABLE received;
"""


class SpoolError(LienthongError, RuntimeError):
    """The spool cannot be read or written (disk full, permission denied, corrupt file)."""


@dataclass(frozen=True)
class Outgoing:
    """One spooled submission."""

    seq: int
    message_id: str
    message_type: str
    body: bytes
    document_id: str | None
    sent_at: str | None
    source_key: str | None = None


@dataclass(frozen=True)
class NewMessage:
    """A submission to spool."""

    message_id: str
    message_type: str
    body: bytes
    document_id: str | None = None
    source_key: str | None = None


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


class Spool:
    """The adapter's SQLite store; every write is a durable transaction when it returns."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._db = sqlite3.connect(path, timeout=30.0, isolation_level=None)
        except sqlite3.Error as e:
            raise SpoolError(f"spool {str(path)!r} cannot be opened: {e}") from e
        # Switching to WAL and creating the tables can meet another connection doing the same
        # (the daemon's two threads, `adapter send`); "locked" there skips the busy handler.
        deadline = time.monotonic() + 30.0
        while True:
            try:
                self._db.execute("PRAGMA busy_timeout=30000")
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
                self._db.executescript(_SCHEMA)
                self._migrate()
                break
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    self._db.close()
                    raise SpoolError(f"spool {str(path)!r} cannot be opened: {e}") from e
                time.sleep(0.05)
            except sqlite3.Error as e:
                self._db.close()
                raise SpoolError(f"spool {str(path)!r} cannot be opened: {e}") from e

    def _migrate(self) -> None:
        exists = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'received'"
        if self._db.execute(exists).fetchone() is None:
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            if self._db.execute(exists).fetchone() is not None:  # not migrated meanwhile
                for statement in _MIGRATE_RECEIVED.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``), durable when the block ends; rolled back
        if the block raises. sqlite3 errors become SpoolError."""
        with self._write() as db:
            yield db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.Error as e:
            raise SpoolError(f"spool {str(self.path)!r} cannot be written: {e}") from e

    def read(self, sql: str, params: Sequence[object] = ()) -> list[tuple[object, ...]]:
        """Rows of one query outside a write transaction; SpoolError if it cannot be read."""
        return self._read(sql, params)

    def _read(self, sql: str, params: Sequence[object] = ()) -> list[tuple[object, ...]]:
        try:
            return list(self._db.execute(sql, params).fetchall())
        except sqlite3.Error as e:
            raise SpoolError(f"spool {str(self.path)!r} cannot be read: {e}") from e

    _COLUMNS = "seq, message_id, message_type, body, document_id, sent_at, source_key"

    @staticmethod
    def _row(row: tuple[object, ...]) -> Outgoing:
        seq, message_id, message_type, body, document_id, sent_at, source_key = row
        assert isinstance(seq, int) and isinstance(message_id, str)
        assert isinstance(message_type, str) and isinstance(body, bytes)
        return Outgoing(
            seq=seq,
            message_id=message_id,
            message_type=message_type,
            body=body,
            document_id=document_id if isinstance(document_id, str) else None,
            sent_at=sent_at if isinstance(sent_at, str) else None,
            source_key=source_key if isinstance(source_key, str) else None,
        )

    # outgoing
    def add(self, message: NewMessage) -> tuple[Outgoing, bool]:
        """Spool ``message``; returns (entry, created). A known source_key returns the earlier
        entry unchanged (created=False): the same file handed over twice is one submission."""
        with self._write() as db:
            if message.source_key is not None:
                row = db.execute(
                    f"SELECT {self._COLUMNS} FROM outgoing WHERE source_key = ?",
                    (message.source_key,),
                ).fetchone()
                if row is not None:
                    return self._row(row), False
            self.insert(db, message)
        entry = self.get(message.message_id)
        assert entry is not None
        return entry, True

    @staticmethod
    def insert(db: sqlite3.Connection, message: NewMessage) -> None:
        """Spool ``message`` inside a :meth:`transaction` (a known message id is kept)."""
        db.execute(
            "INSERT INTO outgoing (message_id, source_key, message_type, document_id, body, "
            "spooled_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (message_id) DO NOTHING",
            (
                message.message_id,
                message.source_key,
                message.message_type,
                message.document_id,
                message.body,
                _now(),
            ),
        )

    def get(self, message_id: str) -> Outgoing | None:
        rows = self._read(
            f"SELECT {self._COLUMNS} FROM outgoing WHERE message_id = ?", (message_id,)
        )
        return self._row(rows[0]) if rows else None

    def find_source(self, source_key: str) -> Outgoing | None:
        rows = self._read(
            f"SELECT {self._COLUMNS} FROM outgoing WHERE source_key = ?", (source_key,)
        )
        return self._row(rows[0]) if rows else None

    def unsent(self, limit: int, max_bytes: int | None = None) -> list[Outgoing]:
        """The oldest submissions not yet confirmed by the broker, in spool order: at most
        ``limit`` of them and, when ``max_bytes`` is given, bodies of at most that many bytes
        between them (the first row always, however large), so a round of large documents
        holds a bounded number of bytes in memory."""
        if max_bytes is not None:
            # Sizes first (SQLite's length() of a blob does not read the blob), then only
            # the bodies that fit.
            sizes = self._read(
                "SELECT seq, length(body) FROM outgoing WHERE sent_at IS NULL ORDER BY seq LIMIT ?",
                (limit,),
            )
            held = 0
            taken = 0
            for _seq, size in sizes:
                assert isinstance(size, int)
                if taken and held + size > max_bytes:
                    break
                held += size
                taken += 1
            limit = taken
            if not limit:
                return []
        rows = self._read(
            f"SELECT {self._COLUMNS} FROM outgoing WHERE sent_at IS NULL ORDER BY seq LIMIT ?",
            (limit,),
        )
        return [self._row(r) for r in rows]

    def mark_sent(self, seqs: Sequence[int]) -> None:
        if not seqs:
            return
        now = _now()
        with self._write() as db:
            # The body is dropped once confirmed (attachments can be large); the row stays so
            # the same file handed over again is still recognised.
            db.executemany(
                "UPDATE outgoing SET sent_at = ?, body = X'' WHERE seq = ? AND sent_at IS NULL",
                [(now, s) for s in seqs],
            )

    def count_unsent(self) -> int:
        rows = self._read("SELECT count(*) FROM outgoing WHERE sent_at IS NULL")
        n = rows[0][0]
        assert isinstance(n, int)
        return n
