"""What the SDK connector keeps in the adapter's SQLite (``spool.sqlite3``, WAL, FULL sync).

- ``sdk_received``: every inbox delivery (document, status, receipt), recorded **before** the
  delivery is acked, deduplicated per kind (a status id never hides a document with the same id).
  The DMS lists what it has not acked ``done``; an item acked ``done`` is never listed again,
  ``fail`` and ``processing`` keep it listed. Listing changes nothing, so an adapter restarted
  between ``getReceivedEdocList`` and ``updateStatus`` lists the item again.
- ``sdk_sent``: one row per package a system sent (its ``DocId`` is the spool's message id), for
  ``getSentEdocList``; keyed by (system id, SHA-256 of the package) so a retried ``sendEdoc``
  finds its first ``DocId``.
- ``sdk_arrivals``: the status 01 (Đã đến) spooled per (document, recipient), automatic or sent
  by the DMS itself, so that one is never forwarded twice.
- ``sdk_directory``: the latest directory snapshot the relay published.

:class:`ReceivedItems` is the port the SDK service needs for received items; :class:`SdkStore`
is its SQLite implementation (one connection per thread, as for the spool).
"""

from __future__ import annotations

import abc
import datetime as dt
import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from adapters.spool import SpoolError
from schemas.directory import DirectoryEntry, DirectorySnapshot

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sdk_received (
    doc_id       TEXT PRIMARY KEY,           -- the docId the DMS sees
    kind         TEXT NOT NULL,              -- 'document' | 'status' | 'receipt'
    message_id   TEXT NOT NULL,              -- the delivery's AMQP message id
    addressee    TEXT NOT NULL,              -- the agency or hosted unit it is for
    sender       TEXT,
    document_id  TEXT,
    in_reply_to  TEXT,                       -- receipts: the submission's message id
    headers      TEXT NOT NULL,              -- the delivery's AMQP headers (JSON)
    body         BLOB NOT NULL,              -- the wire message (JSON)
    state        TEXT NOT NULL DEFAULT 'initial',
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    UNIQUE (kind, message_id)
);
CREATE INDEX IF NOT EXISTS sdk_received_open ON sdk_received (kind, created_at)
    WHERE state <> 'done';
CREATE INDEX IF NOT EXISTS sdk_received_reply ON sdk_received (in_reply_to);
CREATE INDEX IF NOT EXISTS sdk_received_document ON sdk_received (kind, document_id);
CREATE TABLE IF NOT EXISTS sdk_sent (
    doc_id         TEXT PRIMARY KEY,         -- the spool's message id, answered as DocId
    system_id      TEXT NOT NULL,
    package_sha256 TEXT NOT NULL,
    message_type   TEXT NOT NULL,            -- 'document' | 'status'
    document_id    TEXT,
    sender         TEXT NOT NULL,
    recipients     TEXT NOT NULL,            -- JSON list of codes
    notation       TEXT,
    title          TEXT,
    sent_at        TEXT NOT NULL,
    UNIQUE (system_id, package_sha256)
);
CREATE TABLE IF NOT EXISTS sdk_arrivals (
    document_id  TEXT NOT NULL,
    organ_id     TEXT NOT NULL,
    message_id   TEXT NOT NULL,              -- of the status 01 spooled
    origin       TEXT NOT NULL,              -- 'automatic' | 'dms'
    PRIMARY KEY (document_id, organ_id)
);
CREATE TABLE IF NOT EXISTS sdk_directory (
    code  TEXT PRIMARY KEY,
    name  TEXT NOT NULL,
    host  TEXT,
    state TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sdk_directory_host ON sdk_directory (host);
CREATE TABLE IF NOT EXISTS sdk_directory_version (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    version      TEXT NOT NULL,
    published_at TEXT NOT NULL
);
"""

#: States of a received item as the SDK names them.
INITIAL = "initial"
PROCESSING = "processing"
DONE = "done"
FAIL = "fail"
STATES = (INITIAL, PROCESSING, DONE, FAIL)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _stamp(value: dt.datetime) -> str:
    """UTC ISO text of fixed width, so that stored times compare as strings."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _time(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class NewItem:
    """An inbox delivery to record."""

    doc_id: str
    kind: str
    message_id: str
    addressee: str
    sender: str | None
    document_id: str | None
    in_reply_to: str | None
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Item:
    """A recorded inbox delivery."""

    doc_id: str
    kind: str
    message_id: str
    addressee: str
    sender: str | None
    document_id: str | None
    in_reply_to: str | None
    headers: dict[str, str]
    body: bytes
    state: str
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True)
class SentPackage:
    """A package a system handed over through ``sendEdoc``."""

    doc_id: str
    system_id: str
    package_sha256: str
    message_type: str
    document_id: str | None
    sender: str
    recipients: list[str]
    notation: str | None
    title: str | None
    sent_at: dt.datetime


class ReceivedItems(abc.ABC):
    """The port of received items the SDK connector hands to the DMS."""

    @abc.abstractmethod
    def record(self, items: Sequence[NewItem]) -> list[bool]:
        """Record items durably in one transaction; per item, False when already recorded."""

    @abc.abstractmethod
    def open_items(
        self,
        kind: str,
        *,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        state: str | None = None,
        offset: int = 0,
        limit: int = 1000,
    ) -> list[Item]:
        """Items of ``kind`` not acked ``done`` (oldest first); ``state`` narrows further."""

    @abc.abstractmethod
    def item(self, doc_id: str) -> Item | None: ...

    @abc.abstractmethod
    def set_state(self, doc_id: str, state: str) -> None: ...

    @abc.abstractmethod
    def count_open(self, kind: str) -> int: ...


class SdkStore(ReceivedItems):
    """The SQLite implementation; each thread opens its own (a connection is not shared)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._db = sqlite3.connect(path, timeout=30.0, isolation_level=None)
        except sqlite3.Error as e:
            raise SpoolError(f"store {str(path)!r} cannot be opened: {e}") from e
        deadline = time.monotonic() + 30.0
        while True:  # the daemon's threads may create the tables at the same moment
            try:
                self._db.execute("PRAGMA busy_timeout=30000")
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
                self._db.executescript(_SCHEMA)
                break
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    self._db.close()
                    raise SpoolError(f"store {str(path)!r} cannot be opened: {e}") from e
                time.sleep(0.05)

    def close(self) -> None:
        self._db.close()

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
            raise SpoolError(f"store {str(self.path)!r} cannot be written: {e}") from e

    def _read(self, sql: str, params: Sequence[object] = ()) -> list[tuple[object, ...]]:
        try:
            return list(self._db.execute(sql, params).fetchall())
        except sqlite3.Error as e:
            raise SpoolError(f"store {str(self.path)!r} cannot be read: {e}") from e

    # -- received items ------------------------------------------------------------------
    _ITEM = (
        "doc_id, kind, message_id, addressee, sender, document_id, in_reply_to, headers, "
        "body, state, created_at, updated_at"
    )

    @staticmethod
    def _item(row: tuple[object, ...]) -> Item:
        (doc_id, kind, message_id, addressee, sender, document_id, in_reply_to, headers) = row[:8]
        body, state, created_at, updated_at = row[8:]
        return Item(
            doc_id=str(doc_id),
            kind=str(kind),
            message_id=str(message_id),
            addressee=str(addressee),
            sender=sender if isinstance(sender, str) else None,
            document_id=document_id if isinstance(document_id, str) else None,
            in_reply_to=in_reply_to if isinstance(in_reply_to, str) else None,
            headers=json.loads(str(headers)),
            body=body if isinstance(body, bytes) else bytes(str(body), "utf-8"),
            state=str(state),
            created_at=_time(str(created_at)),
            updated_at=_time(str(updated_at)),
        )

    def record(self, items: Sequence[NewItem]) -> list[bool]:
        stamp = _stamp(now())
        created: list[bool] = []
        with self._write() as db:
            for it in items:
                cursor = db.execute(
                    "INSERT INTO sdk_received (doc_id, kind, message_id, addressee, sender, "
                    "document_id, in_reply_to, headers, body, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (
                        it.doc_id,
                        it.kind,
                        it.message_id,
                        it.addressee,
                        it.sender,
                        it.document_id,
                        it.in_reply_to,
                        json.dumps(it.headers, ensure_ascii=False),
                        it.body,
                        stamp,
                        stamp,
                    ),
                )
                created.append(cursor.rowcount == 1)
        return created

    def open_items(
        self,
        kind: str,
        *,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        state: str | None = None,
        offset: int = 0,
        limit: int = 1000,
    ) -> list[Item]:
        sql = f"SELECT {self._ITEM} FROM sdk_received WHERE kind = ? AND state <> 'done'"
        params: list[object] = [kind]
        if since is not None:
            sql += " AND created_at >= ?"
            params.append(_stamp(since))
        if until is not None:
            sql += " AND created_at <= ?"
            params.append(_stamp(until))
        if state is not None:
            sql += " AND state = ?"
            params.append(state)
        sql += " ORDER BY created_at, doc_id LIMIT ? OFFSET ?"
        params += [limit, offset]
        return [self._item(r) for r in self._read(sql, params)]

    def item(self, doc_id: str) -> Item | None:
        rows = self._read(f"SELECT {self._ITEM} FROM sdk_received WHERE doc_id = ?", (doc_id,))
        return self._item(rows[0]) if rows else None

    def set_state(self, doc_id: str, state: str) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE sdk_received SET state = ?, updated_at = ? WHERE doc_id = ?",
                (state, _stamp(now()), doc_id),
            )

    def count_open(self, kind: str) -> int:
        rows = self._read(
            "SELECT count(*) FROM sdk_received WHERE kind = ? AND state <> 'done'", (kind,)
        )
        return int(str(rows[0][0]))

    def replies_to(self, submission_id: str) -> list[Item]:
        """Receipts the relay sent about submission ``submission_id``, oldest first."""
        rows = self._read(
            f"SELECT {self._ITEM} FROM sdk_received WHERE kind = 'receipt' AND in_reply_to = ? "
            "ORDER BY created_at",
            (submission_id,),
        )
        return [self._item(r) for r in rows]

    def statuses_about(self, document_id: str) -> list[Item]:
        """Statuses received about ``document_id``, oldest first."""
        rows = self._read(
            f"SELECT {self._ITEM} FROM sdk_received WHERE kind = 'status' AND document_id = ? "
            "ORDER BY created_at",
            (document_id,),
        )
        return [self._item(r) for r in rows]

    # -- sent packages -------------------------------------------------------------------
    _SENT = (
        "doc_id, system_id, package_sha256, message_type, document_id, sender, recipients, "
        "notation, title, sent_at"
    )

    @staticmethod
    def _sent(row: tuple[object, ...]) -> SentPackage:
        doc_id, system_id, sha, message_type, document_id, sender, recipients = row[:7]
        notation, title, sent_at = row[7:]
        return SentPackage(
            doc_id=str(doc_id),
            system_id=str(system_id),
            package_sha256=str(sha),
            message_type=str(message_type),
            document_id=document_id if isinstance(document_id, str) else None,
            sender=str(sender),
            recipients=list(json.loads(str(recipients))),
            notation=notation if isinstance(notation, str) else None,
            title=title if isinstance(title, str) else None,
            sent_at=_time(str(sent_at)),
        )

    def record_sent(self, package: SentPackage) -> None:
        with self._write() as db:
            db.execute(
                f"INSERT INTO sdk_sent ({self._SENT}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                (
                    package.doc_id,
                    package.system_id,
                    package.package_sha256,
                    package.message_type,
                    package.document_id,
                    package.sender,
                    json.dumps(package.recipients),
                    package.notation,
                    package.title,
                    _stamp(package.sent_at),
                ),
            )

    def sent(self, doc_id: str) -> SentPackage | None:
        rows = self._read(f"SELECT {self._SENT} FROM sdk_sent WHERE doc_id = ?", (doc_id,))
        return self._sent(rows[0]) if rows else None

    # -- status 01 -----------------------------------------------------------------------
    def arrival(self, document_id: str, organ_id: str) -> str | None:
        """The message id of the 01 already spooled for (document, recipient), if any."""
        rows = self._read(
            "SELECT message_id FROM sdk_arrivals WHERE document_id = ? AND organ_id = ?",
            (document_id, organ_id),
        )
        return str(rows[0][0]) if rows else None

    def record_arrival(self, document_id: str, organ_id: str, message_id: str, origin: str) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO sdk_arrivals (document_id, organ_id, message_id, origin) "
                "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (document_id, organ_id, message_id, origin),
            )

    def acknowledge(self, doc_id: str, arrival: tuple[str, str, str] | None = None) -> None:
        """Mark ``doc_id`` done and, in the same transaction, remember its automatic 01."""
        with self._write() as db:
            if arrival is not None:
                db.execute(
                    "INSERT INTO sdk_arrivals (document_id, organ_id, message_id, origin) "
                    "VALUES (?, ?, ?, 'automatic') ON CONFLICT DO NOTHING",
                    arrival,
                )
            db.execute(
                "UPDATE sdk_received SET state = 'done', updated_at = ? WHERE doc_id = ?",
                (_stamp(now()), doc_id),
            )

    # -- directory -----------------------------------------------------------------------
    def replace_directory(self, snapshot: DirectorySnapshot) -> bool:
        """Keep ``snapshot`` unless the same version is already kept; True when replaced."""
        with self._write() as db:
            row = db.execute("SELECT version FROM sdk_directory_version WHERE id = 1").fetchone()
            if row is not None and row[0] == snapshot.version:
                return False
            db.execute("DELETE FROM sdk_directory")
            db.executemany(
                "INSERT INTO sdk_directory (code, name, host, state) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (code) DO NOTHING",
                [(a.code, a.name, a.host, a.state) for a in snapshot.agencies],
            )
            db.execute(
                "INSERT INTO sdk_directory_version (id, version, published_at) VALUES (1, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET version = excluded.version, "
                "published_at = excluded.published_at",
                (snapshot.version, _stamp(snapshot.published_at)),
            )
        return True

    def directory(self) -> list[DirectoryEntry]:
        rows = self._read("SELECT code, name, host, state FROM sdk_directory ORDER BY code")
        return [
            DirectoryEntry(
                code=str(c), name=str(n), host=h if isinstance(h, str) else None, state=str(s)
            )
            for c, n, h, s in rows
        ]

    def directory_version(self) -> str | None:
        rows = self._read("SELECT version FROM sdk_directory_version WHERE id = 1")
        return str(rows[0][0]) if rows else None

    def hosted_units(self, host: str) -> set[str]:
        """Codes of the active units ``host`` sends and receives for (from the directory)."""
        rows = self._read(
            "SELECT code FROM sdk_directory WHERE host = ? AND state = 'active'", (host,)
        )
        return {str(r[0]) for r in rows}
