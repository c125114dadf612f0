"""The directory snapshot the relay publishes to adapters (``lienthong.directory/1``).

Adapters have no database access; the relay publishes the whole directory (every agency, its
name, host and state) to each connected agency's inbox with AMQP ``type`` = ``directory``,
gzip-compressed (``content_encoding = gzip``). An adapter keeps the latest snapshot: it tells
the units the adapter hosts (it may send for them) and answers the SDK's directory calls.
"""

from __future__ import annotations

import datetime as dt
import gzip
from typing import Final, Literal

from pydantic import Field

from schemas.common import WireModel

DIRECTORY_SCHEMA: Final = "lienthong.directory/1"
#: AMQP ``type`` of a directory snapshot.
TYPE_DIRECTORY = "directory"
#: AMQP ``content_encoding`` of a directory snapshot.
DIRECTORY_ENCODING = "gzip"


class DirectoryEntry(WireModel):
    """One agency of the directory (codes are kept verbatim, as the relay stores them)."""

    code: str
    name: str
    host: str | None = None
    state: str = "active"


class DirectorySnapshot(WireModel):
    """The whole directory at ``published_at``; ``version`` is a digest of the entries."""

    schema_: Literal["lienthong.directory/1"] = Field(DIRECTORY_SCHEMA, alias="schema")
    version: str
    published_at: dt.datetime
    agencies: list[DirectoryEntry] = Field(default_factory=list)


def encode_snapshot(snapshot: DirectorySnapshot) -> bytes:
    """The snapshot as gzip-compressed JSON (about 110,000 rows nationally)."""
    data = snapshot.model_dump_json(by_alias=True, exclude_none=True).encode("utf-8")
    return gzip.compress(data, compresslevel=6, mtime=0)


def decode_snapshot(body: bytes) -> DirectorySnapshot:
    """Parse a published snapshot (gzip or plain JSON); raises ValueError when invalid."""
    if body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    return DirectorySnapshot.model_validate_json(body, by_alias=True)
