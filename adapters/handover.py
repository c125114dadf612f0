"""The inbox side of the folder connector: hand each received item to the DMS exactly once.

Items come from the received-item store (:mod:`adapters.received`) and become files in
``inbox/documents|statuses|receipts/``, named ``<addressee>_<delivery message id><suffix>``.
A DMS may take (move away) a file the instant it appears, so a file must never be written
twice, whatever instant the adapter is killed at. Each batch goes through these steps:

1. write each item to a temporary dot-file ``.lienthong-item-<seq>.tmp`` and fsync it; fsync
   the folders (the temporary files are durable);
2. record the intent in the store, in one transaction (``handing`` = the final name);
3. rename each temporary file to its final name: the DMS can see it from now on;
4. fsync the folders, then mark the items taken in one transaction, which also spools the
   status 01 of each document (and drops the stored body: the file holds it).

On start (:meth:`FolderHandOver.recover`), an item with a recorded intent but not marked taken
was killed between 2 and 4: if its temporary file still exists the rename did not happen, so
it is renamed now; if not, the rename happened (the DMS may already have taken the file), so it
is only marked taken. Only then are other temporary files (killed before 2) deleted; those
items are still pending and are written again from the start.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

import structlog

from adapters import assembly
from adapters.config import AdapterConfig
from adapters.files import TEMP_PREFIX, fsync_dir, remove_stale_temp_files
from adapters.formats.base import FileFormat
from adapters.received import ReceivedItem, ReceivedStore
from adapters.spool import SpoolError
from schemas import Document, Receipt, Status
from schemas import topology as t

log = structlog.get_logger()

#: The name the store records as the connector that handed an item over.
CONNECTOR = "folder"
#: Items handed over per batch (one intent transaction, one taken transaction), and the most
#: body bytes a batch holds in memory (a single larger item still goes, alone).
BATCH = 50
BATCH_BYTES = 64 * 1024 * 1024

_SAFE_CHARS = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.-")


def temp_name(seq: int) -> str:
    """The temporary file of item ``seq`` (a dot-file, so the DMS ignores it)."""
    return f"{TEMP_PREFIX}item-{seq}.tmp"


def _safe(name: str, longest: int = 64) -> bool:
    """Usable in a file name as it is: no path separator, not hidden, not too long."""
    return 0 < len(name) <= longest and set(name) <= _SAFE_CHARS and not name.startswith(".")


def _id_for_name(message_id: str) -> str:
    """The message id as it is when it is safe in a file name (the relay's ids are UUIDs), else
    a digest of it: an id can never point outside the folder or hide the file from the DMS."""
    if _safe(message_id, 128):
        return message_id
    return "id-" + hashlib.sha256(message_id.encode("utf-8", "surrogatepass")).hexdigest()[:40]


def _os_reason(e: OSError) -> str:
    return f"{e.strerror} ({e.filename})" if e.filename else str(e.strerror or e)


class FolderHandOver:
    """Writes the store's pending items into ``inbox/`` in the configured format."""

    def __init__(self, config: AdapterConfig, store: ReceivedStore, fmt: FileFormat) -> None:
        self.config = config
        self.store = store
        self.format = fmt
        self._failing: str | None = None  # the reason of the failure logged, until it ends

    # naming and rendering
    def folder(self, kind: str) -> Path:
        if kind == t.TYPE_DOCUMENT:
            return self.config.inbox_documents
        if kind == t.TYPE_STATUS:
            return self.config.inbox_statuses
        return self.config.inbox_receipts

    def file_name(self, item: ReceivedItem) -> str:
        """``<addressee>_<delivery message id>``: the addressee is the agency or hosted unit the
        relay addressed (a DMS serving several units needs to know); receipts are JSON."""
        addressee = item.addressee if _safe(item.addressee) else self.config.agency
        suffix = ".json" if item.kind == t.TYPE_RECEIPT else self.format.suffix
        return f"{addressee}_{_id_for_name(item.message_id)}{suffix}"

    def render(self, message: Document | Status | Receipt, headers: Mapping[str, object]) -> bytes:
        """The file content of a message; ValueError (FormatError) if the format cannot
        express it."""
        if isinstance(message, Document):
            return self.format.write_delivered_document(message, headers)
        if isinstance(message, Status):
            return self.format.write_status(message)
        return self.format.write_receipt(message)

    def check(self, message: Document | Status | Receipt, headers: Mapping[str, object]) -> None:
        """Whether a delivery can be handed over (for :class:`adapters.inbox.InboxRecorder`)."""
        self.render(message, headers)

    # the protocol
    def recover(self) -> int:
        """At start: finish the hand-overs a crash interrupted, then delete stale temporary
        files; returns how many items were finished."""
        finished = self.finish_begun()
        for kind in (t.TYPE_DOCUMENT, t.TYPE_STATUS, t.TYPE_RECEIPT):
            remove_stale_temp_files(self.folder(kind))
        return finished

    def finish_begun(self) -> int:
        """Finish the hand-overs whose intent is recorded (steps 3–4); returns how many."""
        items = self.store.handing_over()
        if not items:
            return 0
        folders: set[Path] = set()
        for item in items:
            assert item.handing is not None
            folder = self.folder(item.kind)
            tmp = folder / temp_name(item.seq)
            if tmp.exists():  # killed before the rename: do it now
                os.rename(tmp, folder / item.handing)
                folders.add(folder)
            # else the rename happened; the DMS may have taken the file already
        for folder in folders:
            fsync_dir(folder)
        self.store.mark_taken_many(
            [(i.kind, i.message_id) for i in items], CONNECTOR, drop_body=True
        )
        log.info("inbox.hand_over_finished", agency=self.config.agency, count=len(items))
        return len(items)

    def hand_over_pending(self) -> int:
        """Hand every pending item over, in batches; returns how many. A folder that cannot be
        written (or a spool that cannot be) is logged once (``inbox.hand_over_failed``) and
        tried again on the next call; an item that cannot be rendered is logged once and
        skipped."""
        total = 0
        after = 0
        try:
            total += self.finish_begun()
            while True:
                items = self.store.pending(after_seq=after, limit=BATCH, max_bytes=BATCH_BYTES)
                if not items:
                    break
                after = items[-1].seq
                total += self.hand_over(items)
        except (OSError, SpoolError) as e:
            reason = _os_reason(e) if isinstance(e, OSError) else str(e)
            if self._failing != reason:
                try:
                    pending: int | None = self.store.count_pending()
                except SpoolError:
                    pending = None
                log.error(
                    "inbox.hand_over_failed",
                    agency=self.config.agency,
                    reason=reason,
                    pending=pending,
                    action="make the inbox folders and the spool writable (and free disk "
                    "space); the items stay in the adapter's store and are written once that "
                    "works",
                )
                self._failing = reason
            return total
        if self._failing is not None:
            log.info("inbox.hand_over_resumed", agency=self.config.agency)
            self._failing = None
        return total

    def hand_over(self, items: list[ReceivedItem]) -> int:
        """Steps 1–4 for one batch; OSError if a file or folder cannot be written (nothing of
        the batch is visible then, unless the failure came after the intent was recorded, in
        which case :meth:`recover` finishes it)."""
        written: list[tuple[ReceivedItem, Path, str]] = []
        try:
            for item in items:
                if assembly.is_chunked(item):  # issue 17: attachments streamed from disk
                    if self._write_chunked(item):
                        written.append((item, self.folder(item.kind), self.file_name(item)))
                    continue
                data = self._render(item)
                if data is None:
                    continue
                folder = self.folder(item.kind)
                tmp = folder / temp_name(item.seq)
                self._write(tmp, data)
                written.append((item, folder, self.file_name(item)))
            folders = {folder for _, folder, _ in written}
            for folder in folders:
                fsync_dir(folder)
        except BaseException:
            for item, folder, _ in written:
                (folder / temp_name(item.seq)).unlink(missing_ok=True)
            raise
        if not written:
            return 0
        self.store.begin_hand_over([(item.seq, name) for item, _, name in written])
        for item, folder, name in written:
            os.rename(folder / temp_name(item.seq), folder / name)
        for folder in folders:
            fsync_dir(folder)
        self.store.mark_taken_many(
            [(item.kind, item.message_id) for item, _, _ in written], CONNECTOR, drop_body=True
        )
        for item, _, name in written:
            log.info(
                "inbox.handed_over",
                agency=self.config.agency,
                message_id=item.message_id,
                message_type=item.kind,
                document_id=item.document_id,
                file=name,
            )
        return len(written)

    def _render(self, item: ReceivedItem) -> bytes | None:
        try:
            return self.render(item.message(), item.headers)
        except ValueError as e:  # checked when recorded: a format or schema change since
            reason = str(e)
            if item.last_error != f"{CONNECTOR}: {reason}":
                log.error(
                    "inbox.render_failed",
                    agency=self.config.agency,
                    message_id=item.message_id,
                    document_id=item.document_id,
                    reason=reason,
                )
                self.store.mark_failed(item.kind, item.message_id, CONNECTOR, reason)
            return None

    def _write_chunked(self, item: ReceivedItem) -> bool:
        path = self.folder(item.kind) / temp_name(item.seq)
        try:
            assembly.write_document(self.render, item, path, self.config)
        except ValueError as e:
            path.unlink(missing_ok=True)
            log.error("inbox.render_failed", agency=self.config.agency, reason=str(e))
            self.store.mark_failed(item.kind, item.message_id, CONNECTOR, str(e))
            return False
        return True

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        # O_TRUNC: a temporary file left by a crash before its intent was recorded is rewritten.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
