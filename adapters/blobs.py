"""Attachment files at the adapter (issue 17): how long each is kept, and who deletes it.

The chunked transfer keeps attachment bytes under ``<root>/.lienthong-blobs/``:

* ``out/<sha256>``: an attachment being sent. The relay reads it from nowhere else until it
  holds every chunk, which it says with its receipt of the document: ``accepted`` (the hub
  stores the bytes; recipients and a later ``resend`` read them there) or ``rejected`` (the
  submission is over; the package file stays in ``outbox/sent/`` to be sent again). The spool
  table ``outgoing_blobs`` says which submission uses which file, written in the transaction
  that spools it; a receipt marks the submission's rows released *before* the receipt is
  recorded and acked (a crash in between releases them again), and a file that no unreleased
  row and no unsent chunk uses is deleted.
* ``in/<sha256>``: an attachment received whole; kept while an assembly or a document not yet
  taken by the DMS names it, deleted once the DMS has the document.
* ``parts/``: attachments being assembled; a part file no active assembly names (a finished or
  abandoned one, or a late chunk's) is deleted, and so are its ``assembly_parts`` rows.

All deleting is one sweep (:meth:`BlobKeeper.sweep`), run in the broker thread (the thread that
writes ``in/`` and ``parts/``, so it never races an assembly) at start and every
:data:`SWEEP_SECONDS`: a crash between a hand-over and the deletion leaves a file that the next
sweep removes. Each file's references are read in one SQL statement (one snapshot), so a
document moving from its assembly to the received-item store is never seen nowhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import threading
import time
from pathlib import Path
from typing import Final

import structlog

from adapters.config import AdapterConfig
from adapters.received import PENDING
from adapters.spool import Spool
from schemas import topology as t
from schemas.chunks import TYPE_CHUNK
from schemas.receipt import Receipt, ReceiptKind

log = structlog.get_logger()

#: How often the sweep runs (a file the DMS has is deleted within this long).
SWEEP_SECONDS: Final = 10.0
#: A file in ``out/`` that no submission names (a spool older than ``outgoing_blobs``, or a
#: crash between staging and spooling) is deleted only when older than this.
OUT_GRACE_SECONDS: Final = 600.0
#: Held by whoever moves a file into ``out/`` until the transaction naming it has committed,
#: and by the sweep of ``out/``: the outbox scanner, the SDK connector and the broker thread
#: are threads of one process (``adapter send`` never stages files).
OUT_LOCK: Final = threading.Lock()
#: Temporary files and folders of ``.lienthong-blobs/`` (chunks.staged, the SDK connector's
#: uploads and answers), and how old one a crash left must be before the sweep removes it.
LEFTOVER_PREFIXES: Final = (".staging-", ".vxp-")
LEFTOVER_SECONDS: Final = 24 * 3600.0
#: Receipts that end the sender's need for its copy of the attachments.
RELEASING: Final = (ReceiptKind.ACCEPTED, ReceiptKind.REJECTED)

_SHA256_NAME: Final = re.compile(r"^[0-9a-f]{64}$")

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS outgoing_blobs (
    message_id  TEXT NOT NULL,           -- the submission (document) that sends the file
    sha256      TEXT NOT NULL,           -- out/<sha256>
    released_at REAL,                    -- set by the relay's accepted / rejected receipt
    PRIMARY KEY (message_id, sha256)
);
CREATE INDEX IF NOT EXISTS outgoing_blobs_held ON outgoing_blobs (sha256)
    WHERE released_at IS NULL;
"""


def ensure_schema(spool: Spool) -> None:
    """Create ``outgoing_blobs`` if this spool has none (idempotent)."""
    with spool.transaction() as db:
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)


def record_outgoing(db: sqlite3.Connection, message_id: str, shas: list[str]) -> None:
    """Inside the spool transaction of a chunked submission: it uses ``out/<sha>``."""
    db.executemany(
        "INSERT INTO outgoing_blobs (message_id, sha256) VALUES (?, ?) ON CONFLICT DO NOTHING",
        [(message_id, sha) for sha in shas],
    )


def part_name(sender: str, sha256: str) -> str:
    """The file in ``parts/`` that assembles attachment ``sha256`` from ``sender``."""
    tag = hashlib.sha256(sender.encode("utf-8")).hexdigest()[:16]
    return f"{tag}-{sha256}.part"


class BlobKeeper:
    """Releases and deletes the adapter's attachment files; one per broker thread."""

    def __init__(self, config: AdapterConfig, spool: Spool) -> None:
        self.config = config
        self.spool = spool
        self.out = config.blobs_dir / "out"
        self.done = config.blobs_dir / "in"
        self.parts = config.blobs_dir / "parts"
        self._next_sweep = 0.0  # the first tick sweeps: what a crash left behind goes at start
        self._ready = False

    def _prepare(self) -> None:
        if not self._ready:
            ensure_schema(self.spool)
            self._ready = True

    def soon(self) -> None:
        """Sweep at the next tick (something was released or abandoned)."""
        self._next_sweep = 0.0

    # -- the sender's side -------------------------------------------------------------------
    def release(self, receipts: list[Receipt]) -> int:
        """Mark the files of the submissions these receipts answer as no longer needed (an
        ``accepted`` or ``rejected`` receipt); returns how many rows were released. Call before
        the receipts are recorded and acked."""
        answered = [r.in_reply_to for r in receipts if r.kind in RELEASING]
        if not answered:
            return 0
        self._prepare()
        now = time.time()
        with self.spool.transaction() as db:
            released = sum(
                db.execute(
                    "UPDATE outgoing_blobs SET released_at = ? "
                    "WHERE message_id = ? AND released_at IS NULL",
                    (now, message_id),
                ).rowcount
                for message_id in answered
            )
        if released:
            self.soon()
        return released

    # -- the sweep ---------------------------------------------------------------------------
    def tick(self) -> None:
        """Sweep if it is due (every broker round calls this); a file that cannot be deleted
        is logged and tried again at the next sweep."""
        if time.monotonic() < self._next_sweep:
            return
        self._next_sweep = time.monotonic() + SWEEP_SECONDS
        try:
            self.sweep()
        except OSError as e:
            log.error(
                "blobs.sweep_failed",
                agency=self.config.agency,
                reason=f"{e.strerror} ({e.filename})",
                action=f"make {str(self.config.blobs_dir)!r} writable by the adapter",
            )

    def sweep(self) -> list[Path]:
        """Delete every attachment file nothing needs any more; returns what was deleted."""
        self._prepare()
        deleted: list[Path] = []
        deleted += self._sweep_out()
        deleted += self._sweep_in()
        deleted += self._sweep_parts()
        deleted += self._sweep_leftovers()
        for path in deleted:
            log.info(
                "blobs.deleted",
                agency=self.config.agency,
                file=str(path.relative_to(self.config.blobs_dir)),
            )
        return deleted

    def _sweep_out(self) -> list[Path]:
        deleted = []
        now = time.time()
        with OUT_LOCK:
            for path in _files(self.out):
                if not _SHA256_NAME.match(path.name):
                    continue
                sha = path.name
                [(held, known, unsent)] = self.spool.read(
                    "SELECT EXISTS (SELECT 1 FROM outgoing_blobs "
                    "               WHERE sha256 = ? AND released_at IS NULL),"
                    " EXISTS (SELECT 1 FROM outgoing_blobs WHERE sha256 = ?),"
                    # rows spooled before outgoing_blobs existed name the file in their body
                    " EXISTS (SELECT 1 FROM outgoing WHERE sent_at IS NULL AND message_type = ? "
                    "         AND instr(body, ?) > 0)",
                    (sha, sha, TYPE_CHUNK, sha.encode("ascii")),
                )
                if held or unsent:
                    continue
                if not known and now - _mtime(path) < OUT_GRACE_SECONDS:
                    continue
                if _unlink(path):
                    deleted.append(path)
        return deleted

    def _sweep_in(self) -> list[Path]:
        deleted = []
        for path in _files(self.done):
            if not _SHA256_NAME.match(path.name):
                continue  # the hand-over's temporary zips live elsewhere; leave the unknown
            needle = path.name.encode("ascii")
            [(used,)] = self.spool.read(
                "SELECT EXISTS (SELECT 1 FROM assemblies "
                "               WHERE abandoned_at IS NULL AND instr(body, ?) > 0)"
                " OR EXISTS (SELECT 1 FROM received_items WHERE kind = ? AND state = ? "
                "            AND instr(body, ?) > 0)",
                (needle, t.TYPE_DOCUMENT, PENDING, needle),
            )
            if not used and _unlink(path):
                deleted.append(path)
        return deleted

    def _sweep_parts(self) -> list[Path]:
        wanted: set[tuple[str, str]] = set()
        for sender, body in self.spool.read(
            "SELECT sender, body FROM assemblies WHERE abandoned_at IS NULL"
        ):
            assert isinstance(sender, str) and isinstance(body, bytes)
            for sha in chunked_shas(body):
                wanted.add((sender, sha))
        names = {part_name(sender, sha) for sender, sha in wanted}
        deleted = [p for p in _files(self.parts) if p.name not in names and _unlink(p)]
        stale = [
            (sender, sha)
            for sender, sha in self.spool.read("SELECT DISTINCT sender, sha256 FROM assembly_parts")
            if (sender, sha) not in wanted
        ]
        if stale:
            with self.spool.transaction() as db:
                db.executemany("DELETE FROM assembly_parts WHERE sender = ? AND sha256 = ?", stale)
        return deleted

    def _sweep_leftovers(self) -> list[Path]:
        """Staging folders and HTTP uploads a crash left (each is removed by its owner when
        it ends normally); a day old at least, so that none in use is touched."""
        deleted = []
        now = time.time()
        try:
            entries = list(self.config.blobs_dir.iterdir())
        except FileNotFoundError:
            return []
        for path in entries:
            if not path.name.startswith(LEFTOVER_PREFIXES):
                continue
            if now - _mtime(path) < LEFTOVER_SECONDS:
                continue
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
                deleted.append(path)
            elif _unlink(path):
                deleted.append(path)
        return deleted


def chunked_shas(body: bytes) -> list[str]:
    """The SHA-256 of each chunked attachment of a document's wire body (no full validation:
    the body was validated when it was delivered)."""
    try:
        document = json.loads(body)
    except ValueError:
        return []
    return [
        a["sha256"]
        for a in document.get("attachments") or []
        if isinstance(a, dict)
        and a.get("transfer") == "chunks"
        and isinstance(a.get("sha256"), str)
    ]


def _files(folder: Path) -> list[Path]:
    try:
        return [p for p in folder.iterdir() if p.is_file()]
    except FileNotFoundError:
        return []


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return time.time()


def _unlink(path: Path) -> bool:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True
