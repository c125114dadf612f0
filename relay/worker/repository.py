"""The batch's repository port: everything :class:`relay.worker.process.BatchProcessor` reads
and writes, and its PostgreSQL implementation.

The port is a small abstract class (cosmicpython's ``AbstractRepository``): the real
:class:`SqlBatchRepository` runs the multi-row statements of :mod:`relay.worker.store` (and of
the chunk, duplicate and federation stores) inside the caller's transaction; the unit tests'
fake (``tests/unit/fakes/batch_repository.py``) subclasses the port and holds rows in dicts,
so a signature change here breaks the fake loudly. Rows travel as the dicts the statements
insert (the column names of :mod:`relay.db.tables`), so the fake sees exactly what PostgreSQL
would be given.
"""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from sqlalchemy import Connection

from relay.blobs import service as blobs
from relay.domain.intake import Envelope, Refusal
from relay.domain.routing import Entry
from relay.domain.statuses import DeliveryRef
from relay.duplicates import Key, earlier_documents
from relay.federation.directory_sync import apply_push
from relay.federation.store import Links
from relay.worker import store
from relay.worker.store import PendingDelivery, StoredDocument
from schemas import Document, Receipt

#: A submission: (the agency that submitted it, its message_id). The same id from two
#: agencies is two submissions (issue 12 item 4).
SubmissionKey = tuple[str, str]


class BatchRepository(abc.ABC):
    """What one batch of outbox messages needs of the hub's records, within one transaction."""

    # -- the directory and the hub's links ----------------------------------------------

    @abc.abstractmethod
    def routing(self, codes: Iterable[str]) -> tuple[dict[str, Entry], Links]:
        """The directory entries of ``codes`` and of their hosts (up to the routing depth),
        and this hub's federation links (:class:`relay.federation.store.Links`)."""

    @abc.abstractmethod
    def apply_directory_push(self, envelope: Envelope, now: dt.datetime) -> Receipt | Refusal:
        """Take the directory a peer hub pushed; its receipt, or why it is refused."""

    # -- chunked attachments (issue 17) -------------------------------------------------

    @abc.abstractmethod
    def answer_chunks(self, envelopes: Sequence[Envelope]) -> list[blobs.Answer]:
        """Store the chunks and answer the chunk requests of one batch, one answer each."""

    @abc.abstractmethod
    def missing_chunks(self, submitted_by: str, document: Document) -> str | None:
        """Why ``document`` cannot be accepted yet (attachment bytes not held), or None."""

    # -- documents ----------------------------------------------------------------------

    @abc.abstractmethod
    def registered_documents(self, keys: Collection[Key]) -> dict[Key, set[str]]:
        """The stored DocumentIds under each registration key (:mod:`relay.duplicates`)."""

    @abc.abstractmethod
    def document_senders(self, document_ids: Sequence[str]) -> dict[str, set[str]]:
        """Who sent the stored documents with these DocumentIds (edXML ``From``)."""

    @abc.abstractmethod
    def insert_documents(self, rows: Sequence[dict[str, Any]]) -> dict[SubmissionKey, int]:
        """Insert new documents; the id of each one inserted, by submission. A submission
        already stored is left as it is and is missing from the answer."""

    @abc.abstractmethod
    def existing_documents(
        self, keys: Sequence[SubmissionKey]
    ) -> dict[SubmissionKey, StoredDocument]:
        """Stored submissions by (submitted_by, message_id)."""

    @abc.abstractmethod
    def insert_deliveries(self, rows: Sequence[dict[str, Any]]) -> dict[tuple[int, str], int]:
        """Insert deliveries; (document_pk, recipient) -> id of each inserted row."""

    @abc.abstractmethod
    def pending_deliveries_of(self, document_pks: Sequence[int]) -> list[PendingDelivery]:
        """Deliveries of these documents still ``pending`` (publish not confirmed), by id."""

    @abc.abstractmethod
    def earlier_deliveries(
        self, refs: Sequence[tuple[str, str, int, str]]
    ) -> list[tuple[int, int, int]]:
        """Deliveries of earlier documents a revoke/update/replace names: ``refs`` are
        (referenced document_id, recipient, new document pk, its sender); the answer holds
        (index into ``refs``, delivery id, document pk) for each earlier delivery of the same
        sender."""

    # -- statuses -----------------------------------------------------------------------

    @abc.abstractmethod
    def status_candidates(
        self, document_ids: Sequence[str]
    ) -> tuple[dict[str, list[DeliveryRef]], set[str]]:
        """Deliveries of every submission of these documents (locked for the transaction),
        and which of the ids are known at all."""

    @abc.abstractmethod
    def statuses_seen(self, message_ids: Sequence[str]) -> set[SubmissionKey]:
        """(actor, message_id) of the recorded events carrying one of these message ids."""

    @abc.abstractmethod
    def before_recall_of(self, delivery_id: int) -> str | None:
        """The state a pending take-back (13) of the delivery remembers, if any."""

    @abc.abstractmethod
    def insert_status_events(self, rows: Sequence[dict[str, Any]]) -> set[SubmissionKey]:
        """Insert status events; the (actor, message_id) pairs that were new."""

    @abc.abstractmethod
    def set_states(self, new_states: dict[int, str]) -> None:
        """Move deliveries (by id) to these states."""

    # -- the timeline, receipts, rejections ---------------------------------------------

    @abc.abstractmethod
    def insert_events(self, rows: Sequence[dict[str, Any]]) -> None:
        """Add timeline events."""

    @abc.abstractmethod
    def stored_receipts(
        self, keys: Sequence[SubmissionKey], kind: str
    ) -> dict[SubmissionKey, tuple[str, dict[str, Any]]]:
        """The newest receipt of ``kind`` sent to each (agency, in_reply_to): (its receipt id,
        its body)."""

    @abc.abstractmethod
    def insert_receipts(self, rows: Sequence[dict[str, Any]]) -> set[str]:
        """Store receipts as sent; the receipt ids that were new."""

    @abc.abstractmethod
    def insert_rejections(self, rows: Sequence[dict[str, Any]]) -> None:
        """Keep refused messages with their reason."""


class SqlBatchRepository(BatchRepository):
    """The port over PostgreSQL, in the transaction of ``conn`` (the caller's ``begin()``)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def routing(self, codes: Iterable[str]) -> tuple[dict[str, Entry], Links]:
        return store.load_routing(self.conn, codes)

    def apply_directory_push(self, envelope: Envelope, now: dt.datetime) -> Receipt | Refusal:
        return apply_push(self.conn, envelope, now)

    def answer_chunks(self, envelopes: Sequence[Envelope]) -> list[blobs.Answer]:
        return blobs.answer(self.conn, envelopes)

    def missing_chunks(self, submitted_by: str, document: Document) -> str | None:
        return blobs.missing(self.conn, submitted_by, document)

    def registered_documents(self, keys: Collection[Key]) -> dict[Key, set[str]]:
        return earlier_documents(self.conn, keys)

    def document_senders(self, document_ids: Sequence[str]) -> dict[str, set[str]]:
        return store.document_senders(self.conn, document_ids)

    def insert_documents(self, rows: Sequence[dict[str, Any]]) -> dict[SubmissionKey, int]:
        return store.insert_documents(self.conn, rows)

    def existing_documents(
        self, keys: Sequence[SubmissionKey]
    ) -> dict[SubmissionKey, StoredDocument]:
        return store.existing_documents(self.conn, keys)

    def insert_deliveries(self, rows: Sequence[dict[str, Any]]) -> dict[tuple[int, str], int]:
        return store.insert_deliveries(self.conn, rows)

    def pending_deliveries_of(self, document_pks: Sequence[int]) -> list[PendingDelivery]:
        return store.pending_deliveries_of(self.conn, document_pks)

    def earlier_deliveries(
        self, refs: Sequence[tuple[str, str, int, str]]
    ) -> list[tuple[int, int, int]]:
        return store.earlier_deliveries(self.conn, refs)

    def status_candidates(
        self, document_ids: Sequence[str]
    ) -> tuple[dict[str, list[DeliveryRef]], set[str]]:
        return store.status_candidates(self.conn, document_ids)

    def statuses_seen(self, message_ids: Sequence[str]) -> set[SubmissionKey]:
        return store.statuses_seen(self.conn, message_ids)

    def before_recall_of(self, delivery_id: int) -> str | None:
        return store.before_recall_of(self.conn, delivery_id)

    def insert_status_events(self, rows: Sequence[dict[str, Any]]) -> set[SubmissionKey]:
        return store.insert_status_events(self.conn, rows)

    def set_states(self, new_states: dict[int, str]) -> None:
        store.set_states(self.conn, new_states)

    def insert_events(self, rows: Sequence[dict[str, Any]]) -> None:
        store.insert_events(self.conn, rows)

    def stored_receipts(
        self, keys: Sequence[SubmissionKey], kind: str
    ) -> dict[SubmissionKey, tuple[str, dict[str, Any]]]:
        return store.stored_receipts(self.conn, keys, kind)

    def insert_receipts(self, rows: Sequence[dict[str, Any]]) -> set[str]:
        return store.insert_receipts(self.conn, rows)

    def insert_rejections(self, rows: Sequence[dict[str, Any]]) -> None:
        store.insert_rejections(self.conn, rows)
