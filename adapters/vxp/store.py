"""What the SDK connector keeps beside the received-item store, in the same SQLite file.

Received items themselves live in the adapter's received-item store
(:mod:`adapters.received`, table ``received_items``): recorded before the ack, deduplicated per
kind, pending until a connector marks them taken. The SDK connector adds:

- ``sdk_item_state``: the DMS's ``processing`` / ``fail`` for an item still pending (``done``
  is the store's ``taken``);
- ``sdk_sent``: one row per package a system sent (its ``DocId`` is the spool's message id), for
  ``getSentEdocList``; the spool's source key (system id, SHA-256 of the package) finds it again
  when the SDK retries;
- ``sdk_arrivals``: the status 01 (Đã đến) per (document, recipient), automatic or sent by the
  DMS itself, so that one is never forwarded twice;
- ``sdk_directory``: the latest directory snapshot the relay published.

:class:`SdkStore` works on a :class:`~adapters.spool.Spool` (one per thread), so its writes can
share a transaction with the spool's and the received-item store's.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from adapters.received import ReceivedItem, ReceivedStore
from adapters.spool import Spool
from schemas.directory import DirectoryEntry, DirectorySnapshot

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS sdk_item_state (
        seq        INTEGER PRIMARY KEY,           -- received_items.seq
        state      TEXT NOT NULL,                 -- 'processing' | 'fail'
        updated_at TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS sdk_sent (
        doc_id         TEXT PRIMARY KEY,          -- the spool's message id, answered as DocId
        system_id      TEXT NOT NULL,
        message_type   TEXT NOT NULL,             -- 'document' | 'status'
        document_id    TEXT,
        sender         TEXT NOT NULL,
        recipients     TEXT NOT NULL,             -- JSON list of codes
        notation       TEXT,
        title          TEXT,
        sent_at        TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS sdk_arrivals (
        document_id  TEXT NOT NULL,
        organ_id     TEXT NOT NULL,
        message_id   TEXT NOT NULL,               -- of the status 01 spooled
        origin       TEXT NOT NULL,               -- 'automatic' | 'dms'
        PRIMARY KEY (document_id, organ_id)
    )""",
    """CREATE TABLE IF NOT EXISTS sdk_directory (
        code  TEXT PRIMARY KEY,
        name  TEXT NOT NULL,
        host  TEXT,
        state TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS sdk_directory_host ON sdk_directory (host)",
    """CREATE TABLE IF NOT EXISTS sdk_directory_version (
        id           INTEGER PRIMARY KEY CHECK (id = 1),
        version      TEXT NOT NULL,
        published_at TEXT NOT NULL
    )""",
)

#: States of a received item as the SDK names them.
INITIAL = "initial"
PROCESSING = "processing"
DONE = "done"
FAIL = "fail"
#: Who sent the 01 of a (document, recipient).
AUTOMATIC = "automatic"
FROM_DMS = "dms"


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _stamp(value: dt.datetime) -> str:
    """UTC ISO text of fixed width, so that stored times compare as strings."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _time(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class Listed:
    """A pending received item as ``getReceivedEdocList`` shows it (read without its body)."""

    seq: int
    kind: str
    addressee: str
    sender: str
    received_at: dt.datetime
    failures: int
    state: str | None  # the DMS's own processing / fail, if any
    updated_at: dt.datetime | None


@dataclass(frozen=True)
class SentPackage:
    """A package a system handed over through ``sendEdoc``."""

    doc_id: str
    system_id: str
    message_type: str
    document_id: str | None
    sender: str
    recipients: list[str]
    notation: str | None
    title: str | None
    sent_at: dt.datetime


@dataclass(frozen=True)
class Arrival:
    """The status 01 spooled for a (document, recipient)."""

    message_id: str
    origin: str  # AUTOMATIC | FROM_DMS


class SdkStore:
    """The SDK connector's tables; SpoolError when the file cannot be used."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        self.received = ReceivedStore(spool)
        with spool.transaction() as db:
            for statement in _SCHEMA:
                db.execute(statement)

    # -- received items as the SDK shows them ------------------------------------------------
    def set_state(self, item: ReceivedItem, state: str) -> None:
        with self.spool.transaction() as db:
            db.execute(
                "INSERT INTO sdk_item_state (seq, state, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (seq) DO UPDATE SET state = excluded.state, "
                "updated_at = excluded.updated_at",
                (item.seq, state, _stamp(now())),
            )

    def listing(
        self,
        kind: str,
        *,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        state: str | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> list[Listed]:
        """Pending items of ``kind``, oldest first, without loading their bodies (a page of
        documents may carry hundreds of megabytes of attachments). ``state`` = ``initial``,
        ``processing`` or ``fail`` narrows to the DMS's own state."""
        where = ["r.state = 'pending'", "r.kind = ?"]
        params: list[object] = [kind]
        if since is not None:
            where.append("r.received_at >= ?")
            params.append(_stamp(since))
        if until is not None:
            where.append("r.received_at <= ?")
            params.append(_stamp(until))
        if state == INITIAL:
            where.append("s.state IS NULL AND r.failures = 0")
        elif state == FAIL:
            where.append("(s.state = 'fail' OR (s.state IS NULL AND r.failures > 0))")
        elif state is not None:
            where.append("s.state = ?")
            params.append(state)
        rows = self.spool.read(
            "SELECT r.seq, r.kind, r.addressee, r.received_at, r.failures, "
            "json_extract(CAST(r.body AS TEXT), '$.sender.organ_id'), s.state, s.updated_at "
            "FROM received_items r LEFT JOIN sdk_item_state s ON s.seq = r.seq "
            f"WHERE {' AND '.join(where)} ORDER BY r.seq LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return [
            Listed(
                seq=int(str(seq)),
                kind=str(k),
                addressee=str(addressee),
                sender=str(sender or ""),
                received_at=_time(str(received_at)),
                failures=int(str(failures)),
                state=str(st) if st is not None else None,
                updated_at=_time(str(updated)) if updated is not None else None,
            )
            for seq, k, addressee, received_at, failures, sender, st, updated in rows
        ]

    def about(self, kind: str, document_id: str) -> list[ReceivedItem]:
        """Received items of ``kind`` about ``document_id`` (taken or not), oldest first."""
        rows = self.spool.read(
            "SELECT seq FROM received_items WHERE kind = ? AND document_id = ? ORDER BY seq",
            (kind, document_id),
        )
        items = [self.received.get_by_seq(int(str(r[0]))) for r in rows]
        return [i for i in items if i is not None]

    # -- sent packages -------------------------------------------------------------------
    _SENT = (
        "doc_id, system_id, message_type, document_id, sender, recipients, notation, title, sent_at"
    )

    def record_sent(self, package: SentPackage) -> None:
        with self.spool.transaction() as db:
            db.execute(
                f"INSERT INTO sdk_sent ({self._SENT}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                (
                    package.doc_id,
                    package.system_id,
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
        rows = self.spool.read(f"SELECT {self._SENT} FROM sdk_sent WHERE doc_id = ?", (doc_id,))
        if not rows:
            return None
        doc, system_id, message_type, document_id, sender, recipients, notation, title = rows[0][:8]
        return SentPackage(
            doc_id=str(doc),
            system_id=str(system_id),
            message_type=str(message_type),
            document_id=document_id if isinstance(document_id, str) else None,
            sender=str(sender),
            recipients=list(json.loads(str(recipients))),
            notation=notation if isinstance(notation, str) else None,
            title=title if isinstance(title, str) else None,
            sent_at=_time(str(rows[0][8])),
        )

    # -- status 01 -----------------------------------------------------------------------
    def arrival(self, document_id: str, organ_id: str) -> Arrival | None:
        """The 01 already spooled (or about to be) for (document, recipient), if any."""
        rows = self.spool.read(
            "SELECT message_id, origin FROM sdk_arrivals WHERE document_id = ? AND organ_id = ?",
            (document_id, organ_id),
        )
        return Arrival(str(rows[0][0]), str(rows[0][1])) if rows else None

    def record_arrival(self, document_id: str, organ_id: str, arrival: Arrival) -> Arrival:
        """Remember the 01 of (document, recipient); the first one recorded wins and is
        returned."""
        with self.spool.transaction() as db:
            db.execute(
                "INSERT INTO sdk_arrivals (document_id, organ_id, message_id, origin) "
                "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (document_id, organ_id, arrival.message_id, arrival.origin),
            )
        kept = self.arrival(document_id, organ_id)
        assert kept is not None
        return kept

    # -- directory -----------------------------------------------------------------------
    def replace_directory(self, snapshot: DirectorySnapshot) -> bool:
        """Keep ``snapshot`` unless the same version is already kept; True when replaced."""
        with self.spool.transaction() as db:
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
        rows = self.spool.read("SELECT code, name, host, state FROM sdk_directory ORDER BY code")
        return [
            DirectoryEntry(
                code=str(c), name=str(n), host=h if isinstance(h, str) else None, state=str(s)
            )
            for c, n, h, s in rows
        ]

    def hosted_units(self, host: str) -> set[str]:
        """Codes of the active units ``host`` sends and receives for (from the directory)."""
        rows = self.spool.read(
            "SELECT code FROM sdk_directory WHERE host = ? AND state = 'active'", (host,)
        )
        return {str(r[0]) for r in rows}
