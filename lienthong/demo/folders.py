"""The demo's side of the folder contract (DESIGN §5): drop files in outbox/, watch inbox/."""

from __future__ import annotations

import os
from pathlib import Path


def drop_file(folder: Path, name: str, data: bytes) -> Path:
    """Write ``data`` as ``folder/name`` the way a DMS must: under a dot-name, fsynced, renamed."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{name}.part"
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    final = folder / name
    os.replace(tmp, final)
    return final


class NewFiles:
    """Files that appeared in a folder since the last poll (dot-files are still being written)."""

    def __init__(self, folder: Path, suffixes: tuple[str, ...] = (".json",)) -> None:
        self.folder = folder
        self.suffixes = suffixes
        self._seen: set[str] = set()

    def poll(self) -> list[Path]:
        try:
            entries = list(os.scandir(self.folder))
        except FileNotFoundError:
            return []
        fresh = [
            e
            for e in entries
            if e.is_file()
            and not e.name.startswith(".")
            and e.name.endswith(self.suffixes)
            and e.name not in self._seen
        ]
        fresh.sort(key=lambda e: (e.stat().st_mtime_ns, e.name))
        self._seen.update(e.name for e in fresh)
        return [Path(e.path) for e in fresh]
