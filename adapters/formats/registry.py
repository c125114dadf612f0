"""Which :class:`FileFormat` reads a file (by suffix) or writes received files (by name).

The edXML format lives in :mod:`adapters.formats.edxml` and is imported only when needed, so a
missing or broken edXML module costs the JSON connector nothing: ``.edxml`` files are then
rejected with a message that says so.
"""

from __future__ import annotations

import importlib

from adapters.formats.base import FileFormat, FormatError
from adapters.formats.json import JsonFormat

#: Suffix (lower case, with the dot) -> format name.
SUFFIXES: dict[str, str] = {".json": "json", ".edxml": "edxml"}

_cache: dict[str, FileFormat] = {}


class FormatUnavailable(FormatError):
    """A known format whose implementation cannot be loaded."""


def get_format(name: str) -> FileFormat:
    """The format called ``name`` (``json`` | ``edxml``); FormatError if unknown/unavailable."""
    if name in _cache:
        return _cache[name]
    fmt: FileFormat
    if name == "json":
        fmt = JsonFormat()
    elif name == "edxml":
        try:
            module = importlib.import_module("adapters.formats.edxml")
            fmt = module.EdxmlFormat()
        except Exception as e:  # ImportError, AttributeError, or a broken module
            raise FormatUnavailable(
                f"the edXML format is not available in this installation ({e}); "
                "send the file as .json instead"
            ) from e
    else:
        known = ", ".join(sorted(set(SUFFIXES.values())))
        raise FormatError(f"format: unknown format {name!r}; expected one of {known}")
    _cache[name] = fmt
    return fmt


def is_candidate(filename: str) -> bool:
    """True for a file the outbox scanner should take: not a dot-file, a known suffix."""
    if filename.startswith("."):
        return False
    return suffix_of(filename) in SUFFIXES


def suffix_of(filename: str) -> str:
    dot = filename.rfind(".")
    return filename[dot:].lower() if dot > 0 else ""


def format_for_file(filename: str) -> FileFormat:
    """The format that reads ``filename``, chosen by its suffix."""
    suffix = suffix_of(filename)
    name = SUFFIXES.get(suffix)
    if name is None:
        known = ", ".join(SUFFIXES)
        raise FormatError(f"file name: {filename!r} has no known suffix; expected {known}")
    return get_format(name)
