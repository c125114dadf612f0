"""The outbox side of the folder connector: take what the DMS drops, spool it, move it away.

A file is moved to ``outbox/sent/`` only after it is durably spooled. The spool is keyed on the
file's name and the SHA-256 of its content, so a crash between spooling and moving, or the
same file handed over again, is recognised and never becomes a second submission.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import stat
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import structlog

from adapters import chunks
from adapters.config import AdapterConfig
from adapters.files import move_no_clobber, write_atomic
from adapters.formats.base import FormatError
from adapters.formats.registry import format_for_file, is_candidate
from adapters.spool import NewMessage, Outgoing, Spool
from schemas import Document
from schemas.envelope import encode_message, message_type

log = structlog.get_logger()


@dataclass(frozen=True)
class Taken:
    """What became of one outbox file."""

    source: Path
    moved_to: Path
    entry: Outgoing | None  # the spooled submission; None when rejected
    created: bool  # False when the file had been spooled before
    error: str | None = None


def source_key(name: str, data: bytes) -> str:
    """The spool key of a file: its name and the SHA-256 of its content."""
    return f"{name}:{hashlib.sha256(data).hexdigest()}"


def too_big(size: int, max_bytes: int) -> str | None:
    """The rejection reason of a file of ``size`` bytes, or None if it is within the limit."""
    if size <= max_bytes:
        return None
    return f"file size: {size} bytes is over the limit of {max_bytes} bytes"


def read_bounded(path: Path, max_bytes: int) -> bytes:
    """The content of ``path``; FormatError, without reading it, if it is over ``max_bytes``.

    The size is taken from ``stat`` first, and at most ``max_bytes + 1`` bytes are read, so a
    file that grows in between is refused too. OSError (FileNotFoundError…) propagates.
    """
    with open(path, "rb") as f:
        reason = too_big(os.fstat(f.fileno()).st_size, max_bytes)
        if reason is None:
            data = f.read(max_bytes + 1)
            reason = too_big(len(data), max_bytes)
    if reason is not None:
        raise FormatError(reason)
    return data


def submit(
    spool: Spool,
    name: str,
    data: bytes,
    *,
    max_bytes: int,
    config: AdapterConfig | None = None,
) -> tuple[Outgoing, bool]:
    """Validate and spool one file's content; FormatError says what is wrong.

    Returns (entry, created): created is False when this very file was spooled before. With
    ``config``, a document file larger than ``chunk_threshold_bytes`` sends its attachments in
    chunks (issue 17, :func:`adapters.chunks.stage_document`).
    """
    key = source_key(name, data)
    earlier = spool.find_source(key)
    if earlier is not None:
        return earlier, False
    if len(data) > max_bytes:
        raise FormatError(f"file size: {len(data)} bytes is over the limit of {max_bytes} bytes")
    message, warnings = format_for_file(name).read_with_warnings(data)
    if warnings:
        # A warning never stops a file (issue 13): it is sent, and the DMS's vendor can see
        # what was read leniently here or with ``lienthong edxml check``.
        log.warning("outbox.read_warnings", file=name, warnings=warnings)
    if (
        config is not None
        and len(data) > config.chunk_threshold_bytes
        and isinstance(message, Document)
        and message.attachments
    ):
        sha = key.rsplit(":", 1)[1]
        staged = chunks.stage_document(config, message, sha)
        return chunks.spool_package(config, spool, staged, key), True
    return spool.add(
        NewMessage(
            message_id=str(uuid.uuid4()),
            message_type=message_type(message),
            body=encode_message(message),
            document_id=message.document_id,
            source_key=key,
        )
    )


def error_text(name: str, reason: str) -> str:
    """The content of ``<name>.error.txt``: one problem per line, for a person."""
    problems = "\n".join(f"  - {p}" for p in reason.split("; "))
    at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return (
        f"File: {name}\nRejected at: {at}\nThe file was not sent. What is wrong:\n{problems}\n"
        "Fix the file and drop it into outbox/ again.\n"
    )


class OutboxScanner:
    """Polls ``outbox/`` for ``*.json`` / ``*.edxml``; dot-files and anything else are left.

    A dot-file (a DMS writes under a temporary name, then renames) older than
    ``temp_file_warn_seconds`` is warned about once: the DMS probably never renamed it.
    """

    def __init__(self, config: AdapterConfig, spool: Spool) -> None:
        self.config = config
        self.spool = spool
        self._warned: set[tuple[str, int]] = set()  # (name, inode) of stale dot-files warned

    def _check_temp_file(self, path: Path, now: float, seen: set[tuple[str, int]]) -> None:
        try:
            st = path.stat()
        except FileNotFoundError:
            return
        if not stat.S_ISREG(st.st_mode):
            return
        key = (path.name, st.st_ino)
        seen.add(key)
        age = now - st.st_mtime
        if age < self.config.temp_file_warn_seconds or key in self._warned:
            return
        self._warned.add(key)
        log.warning(
            "outbox.temp_file_stale",
            agency=self.config.agency,
            file=path.name,
            age_seconds=round(age),
            action="the DMS wrote this file under a temporary name (leading '.') and never "
            "renamed it, so it is not sent: rename it without the leading '.' to send it, or "
            "delete it",
        )

    def candidates(self) -> list[Path]:
        """Files ready to take, oldest first (then by name)."""
        now = time.time()
        found: list[tuple[int, str, Path]] = []
        try:
            entries = list(self.config.outbox.iterdir())
        except FileNotFoundError:
            return []
        temp_files: set[tuple[str, int]] = set()
        for path in entries:
            if path.name.startswith("."):
                self._check_temp_file(path, now, temp_files)
                continue
            if not is_candidate(path.name):
                continue
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            if not path.is_file():
                continue
            if self.config.settle_seconds and now - st.st_mtime < self.config.settle_seconds:
                continue
            found.append((st.st_mtime_ns, path.name, path))
        self._warned &= temp_files  # forget files that are gone (renamed or deleted)
        found.sort()
        return [p for _, _, p in found]

    def scan_once(self) -> list[Taken]:
        """Take every ready file; SpoolError propagates (the file stays for the next scan)."""
        taken = []
        for path in self.candidates():
            result = self.take(path)
            if result is not None:
                taken.append(result)
        return taken

    def take(self, path: Path) -> Taken | None:
        try:
            if chunks.streams(self.config, path):  # issue 17: large edXML, sent in chunks
                entry, created = chunks.submit_streamed(self.config, self.spool, path)
            else:
                data = read_bounded(path, self.config.max_file_bytes)
                entry, created = submit(
                    self.spool,
                    path.name,
                    data,
                    max_bytes=self.config.max_file_bytes,
                    config=self.config,
                )
        except FileNotFoundError:
            return None
        except FormatError as e:
            return self._reject(path, str(e))
        moved = move_no_clobber(path, self.config.sent_dir)
        log.info(
            "outbox.spooled" if created else "outbox.already_spooled",
            agency=self.config.agency,
            file=path.name,
            message_id=entry.message_id,
            document_id=entry.document_id,
            message_type=entry.message_type,
        )
        return Taken(source=path, moved_to=moved, entry=entry, created=created)

    def _reject(self, path: Path, reason: str) -> Taken:
        moved = move_no_clobber(path, self.config.rejected_dir)
        write_atomic(
            moved.with_name(moved.name + ".error.txt"),
            error_text(path.name, reason).encode("utf-8"),
        )
        log.warning(
            "outbox.rejected",
            agency=self.config.agency,
            file=path.name,
            moved_to=moved.name,
            reason=reason,
        )
        return Taken(source=path, moved_to=moved, entry=None, created=False, error=reason)
