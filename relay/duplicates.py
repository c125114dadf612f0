"""Decree 30/2020, Phụ lục VI III.1.h: a document may be a duplicate of an earlier one.

A body issues each number only once: a second document from the same sender with the same
number (``Code/CodeNumber``), notation (``Code/CodeNotation``) and date
(``PromulgationInfo/PromulgationDate``) but another ``DocumentId`` is most likely the same
document sent again under a new id (a DMS that regenerated it). The hub cannot know for sure,
so it delivers it as usual and flags it: the sender's ``accepted`` receipt names the earlier
DocumentId (``duplicate_of``, with a ``reason`` a person reads), and the document's timeline
gets a ``duplicate`` event (``lienthong trace``, the console). A document without all three
values is never flagged; the same DocumentId again (a revoke, an update) is not a duplicate.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping
from typing import Any, Final

from sqlalchemy import Connection, select, tuple_

from relay.db.tables import documents
from relay.domain import events as ev
from schemas import Document

#: The timeline event of a flagged document.
DUPLICATE_EVENT: Final = ev.DUPLICATE

Key = tuple[str, str, str, dt.date]


def registration_key(doc: Document) -> Key | None:
    """(sender, number, notation, date), or None when one of them is missing."""
    number = (doc.code.code_number or "").strip() if doc.code else ""
    notation = (doc.code.code_notation or "").strip() if doc.code else ""
    date = doc.promulgation_info.promulgation_date if doc.promulgation_info else None
    if not number or not notation or date is None:
        return None
    return (doc.sender.organ_id, number, notation, date)


def reason(doc: Document, earlier: str) -> str:
    key = registration_key(doc)
    assert key is not None
    return (
        f"possible duplicate (Decree 30/2020, Phụ lục VI III.1.h): số {key[1]}/{key[2]} of "
        f"{key[3].isoformat()} from {key[0]} was already sent as document {earlier!r}; "
        "delivered all the same"
    )


def keys_of(docs: Iterable[Document]) -> set[Key]:
    """The registration keys of ``docs`` (those that have one)."""
    return {k for k in (registration_key(d) for d in docs) if k is not None}


def earlier_documents(conn: Connection, keys: Collection[Key]) -> dict[Key, set[str]]:
    """The DocumentIds stored under each of ``keys``."""
    seen: dict[Key, set[str]] = {}
    if not keys:
        return seen
    rows = conn.execute(
        select(
            documents.c.sender,
            documents.c.code_number,
            documents.c.code_notation,
            documents.c.promulgation_date,
            documents.c.document_id,
        ).where(
            tuple_(
                documents.c.sender,
                documents.c.code_number,
                documents.c.code_notation,
                documents.c.promulgation_date,
            ).in_(sorted(keys))
        )
    )
    for sender, number, notation, date, document_id in rows:
        seen.setdefault((sender, number, notation, date), set()).add(document_id)
    return seen


class DuplicateDetector:
    """The earlier documents of one batch's keys, read once (:func:`earlier_documents`, or the
    batch repository's ``registered_documents``); :meth:`check` per document."""

    def __init__(self, earlier: Mapping[Key, set[str]]) -> None:
        self._seen: dict[Key, set[str]] = {k: set(ids) for k, ids in earlier.items()}

    def check(self, doc: Document) -> str | None:
        """The DocumentId of an earlier document this one duplicates (None if none); the
        document then counts as seen, for the rest of the batch."""
        key = registration_key(doc)
        if key is None:
            return None
        ids = self._seen.setdefault(key, set())
        earlier = sorted(i for i in ids if i != doc.document_id)
        ids.add(doc.document_id)
        return earlier[0] if earlier else None


def duplicate_event(document_pk: int, doc: Document, earlier: str, actor: str) -> dict[str, Any]:
    return {
        "document_pk": document_pk,
        "kind": DUPLICATE_EVENT,
        "actor": actor,
        "description": reason(doc, earlier),
        "detail": {"duplicate_of": earlier},
    }
