"""Filesystem helpers of the folder connector: atomic writes and moves that never overwrite."""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

#: Prefix of the adapter's own temporary files (dot-files, so a DMS ignores them).
TEMP_PREFIX = ".lienthong-"


def fsync_dir(directory: Path) -> None:
    """Make a rename or a new entry in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, *, sync_dir: bool = True) -> None:
    """Write ``data`` to ``path`` so that it appears whole or not at all, and durably.

    A temporary dot-file next to it is written and fsynced, renamed over ``path`` (replacing
    a copy written before a crash), and the directory is fsynced. Raises OSError.
    """
    tmp = path.with_name(f"{TEMP_PREFIX}{secrets.token_hex(6)}-{path.name}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if sync_dir:  # else the caller fsyncs the folder once for a batch, before relying on it
        fsync_dir(path.parent)


def _candidates(directory: Path, name: str) -> Iterator[Path]:
    stem, dot, suffix = name.partition(".")
    yield directory / name
    for n in range(1, 100_000):
        yield directory / (f"{stem}.{n}{dot}{suffix}" if dot else f"{stem}.{n}")


def move_no_clobber(src: Path, directory: Path) -> Path:
    """Move ``src`` into ``directory`` under its name, or ``name.1.ext``… if that is taken.

    Never overwrites an earlier file: a hard link fails when the target exists, so two
    processes cannot pick the same name. Returns the new path.
    """
    for target in _candidates(directory, src.name):
        try:
            os.link(src, target)
        except FileExistsError:
            continue
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV):
                raise
            # No hard links on this filesystem: rename if free (single-process race only).
            if target.exists():
                continue
            os.rename(src, target)
            fsync_dir(directory)
            return target
        src.unlink()
        fsync_dir(directory)
        fsync_dir(src.parent)
        return target
    raise FileExistsError(f"{directory}: no free name for {src.name!r}")


def remove_stale_temp_files(directory: Path) -> int:
    """Delete the adapter's temporary files left by a crash; returns how many."""
    removed = 0
    if not directory.is_dir():
        return 0
    for entry in directory.iterdir():
        if entry.name.startswith(TEMP_PREFIX) and entry.name.endswith(".tmp"):
            entry.unlink(missing_ok=True)
            removed += 1
    return removed
