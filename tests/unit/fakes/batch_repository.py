"""The batch repository in memory: rows in dicts, the constraints PostgreSQL enforces kept by
hand (one document per submission, one delivery per document and recipient, one status event
per (actor, message_id), one receipt per receipt id)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from relay.blobs.service import Answer
from relay.domain import events as ev
from relay.domain import states
from relay.domain.intake import Envelope, Refusal
from relay.domain.routing import MAX_HOST_DEPTH, Entry
from relay.domain.statuses import DeliveryRef
from relay.duplicates import Key
from relay.federation.store import Links
from relay.worker.repository import BatchRepository, SubmissionKey
from relay.worker.store import PendingDelivery, StoredDocument
from schemas import Document, Receipt


class FakeBatchRepository(BatchRepository):
    """Everything a batch reads and writes, held in this object (one per test = one hub)."""

    def __init__(self, agencies: Iterable[Entry] = ()) -> None:
        self.agencies: dict[str, Entry] = {e.code: e for e in agencies}
        self.hub_links = Links()
        #: bytes held per (submitted_by, sha256) of chunked attachments
        self.chunk_bytes: dict[tuple[str, str], int] = {}
        self.documents: dict[int, dict[str, Any]] = {}
        self.deliveries: dict[int, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.receipts: list[dict[str, Any]] = []
        self.rejections: list[dict[str, Any]] = []
        self._next_id = 1

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    # -- test helpers (what the worker's loop and the retry worker do elsewhere) ---------

    def confirm(self, delivery_ids: Iterable[int]) -> None:
        """The broker confirmed these copies (:func:`relay.worker.store.mark_queued`)."""
        for did in delivery_ids:
            row = self.deliveries[did]
            if row["state"] == states.CONFIRM_MOVES_FROM:
                row["state"] = states.CONFIRM_MOVES_TO

    def delivery_of(self, document_id: str, recipient: str) -> dict[str, Any]:
        [row] = [
            d
            for d in self.deliveries.values()
            if d["recipient"] == recipient
            and self.documents[d["document_pk"]]["document_id"] == document_id
        ]
        return row

    # -- the port -----------------------------------------------------------------------

    def routing(self, codes: Iterable[str]) -> tuple[dict[str, Entry], Links]:
        found: dict[str, Entry] = {}
        wanted = set(codes)
        for _ in range(MAX_HOST_DEPTH + 1):
            found.update({c: self.agencies[c] for c in wanted if c in self.agencies})
            wanted = {e.host for e in found.values() if e.host is not None} - found.keys()
        return found, self.hub_links

    def apply_directory_push(self, envelope: Envelope, now: dt.datetime) -> Receipt | Refusal:
        return Refusal(f"type: 'directory': {envelope.owner} is not a peer hub here")

    def answer_chunks(self, envelopes: Sequence[Envelope]) -> list[Answer]:
        return [Answer(refusal="chunks are not kept by this fake") for _ in envelopes]

    def missing_chunks(self, submitted_by: str, document: Document) -> str | None:
        short = [
            a.name
            for a in document.chunked_attachments()
            if self.chunk_bytes.get((submitted_by, a.sha256), 0) != a.size
        ]
        return f"attachments not held: {', '.join(short)}" if short else None

    def registered_documents(self, keys: Collection[Key]) -> dict[Key, set[str]]:
        out: dict[Key, set[str]] = {}
        for d in self.documents.values():
            key = (d["sender"], d["code_number"], d["code_notation"], d["promulgation_date"])
            if key in keys:
                out.setdefault(key, set()).add(d["document_id"])
        return out

    def document_senders(self, document_ids: Sequence[str]) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for d in self.documents.values():
            if d["document_id"] in document_ids:
                out.setdefault(d["document_id"], set()).add(d["sender"])
        return out

    def _document_pk(self, key: SubmissionKey) -> int | None:
        for pk, d in self.documents.items():
            if (d["submitted_by"], d["message_id"]) == key:
                return pk
        return None

    def insert_documents(self, rows: Sequence[dict[str, Any]]) -> dict[SubmissionKey, int]:
        inserted: dict[SubmissionKey, int] = {}
        for row in rows:
            key = (row["submitted_by"], row["message_id"])
            if self._document_pk(key) is None:
                pk = self._new_id()
                self.documents[pk] = dict(row)
                inserted[key] = pk
        return inserted

    def existing_documents(
        self, keys: Sequence[SubmissionKey]
    ) -> dict[SubmissionKey, StoredDocument]:
        out = {}
        for key in keys:
            pk = self._document_pk(key)
            if pk is not None:
                out[key] = StoredDocument(pk=pk, message_id=key[1], submitted_by=key[0])
        return out

    def insert_deliveries(self, rows: Sequence[dict[str, Any]]) -> dict[tuple[int, str], int]:
        taken = {(d["document_pk"], d["recipient"]) for d in self.deliveries.values()}
        taken_ids = {d["message_id"] for d in self.deliveries.values()}
        out = {}
        for row in rows:
            key = (row["document_pk"], row["recipient"])
            if key in taken or row["message_id"] in taken_ids:
                continue
            did = self._new_id()
            self.deliveries[did] = dict(row)
            taken.add(key)
            taken_ids.add(row["message_id"])
            out[key] = did
        return out

    def pending_deliveries_of(self, document_pks: Sequence[int]) -> list[PendingDelivery]:
        out = []
        for did in sorted(self.deliveries):
            d = self.deliveries[did]
            if d["document_pk"] in document_pks and d["state"] == states.PENDING:
                doc = self.documents[d["document_pk"]]
                out.append(
                    PendingDelivery(
                        delivery_id=did,
                        document_pk=d["document_pk"],
                        document_id=doc["document_id"],
                        message_id=d["message_id"],
                        submission_id=doc["message_id"],
                        submitted_by=doc["submitted_by"],
                        recipient=d["recipient"],
                        route_to=d["route_to"],
                        payload=doc["payload"],
                        priority=doc.get("priority"),
                    )
                )
        return out

    def earlier_deliveries(
        self, refs: Sequence[tuple[str, str, int, str]]
    ) -> list[tuple[int, int, int]]:
        out = []
        for n, (ref_id, recipient, new_pk, sender) in enumerate(refs):
            for did, d in sorted(self.deliveries.items()):
                doc = self.documents[d["document_pk"]]
                if (
                    doc["document_id"] == ref_id
                    and doc["sender"] == sender
                    and d["document_pk"] < new_pk
                    and d["recipient"] == recipient
                ):
                    out.append((n, did, d["document_pk"]))
        return out

    def status_candidates(
        self, document_ids: Sequence[str]
    ) -> tuple[dict[str, list[DeliveryRef]], set[str]]:
        out: dict[str, list[DeliveryRef]] = {}
        for did in sorted(self.deliveries):
            d = self.deliveries[did]
            doc = self.documents[d["document_pk"]]
            if doc["document_id"] in document_ids:
                out.setdefault(doc["document_id"], []).append(
                    DeliveryRef(
                        delivery_id=did,
                        document_pk=d["document_pk"],
                        document_sender=doc["sender"],
                        submitted_by=doc["submitted_by"],
                        business_type=doc["business_type"],
                        recipient=d["recipient"],
                        route_to=d["route_to"],
                        state=d["state"],
                    )
                )
        known = {d["document_id"] for d in self.documents.values()} & set(document_ids)
        return out, known

    def statuses_seen(self, message_ids: Sequence[str]) -> set[SubmissionKey]:
        return {
            (e["actor"], e["message_id"])
            for e in self.events
            if e.get("message_id") is not None and e["message_id"] in message_ids
        }

    def before_recall_of(self, delivery_id: int) -> str | None:
        for e in reversed(self.events):
            if e.get("delivery_id") == delivery_id and e["kind"] == ev.STATUS:
                remembered = (e.get("detail") or {}).get("before_recall")
                if remembered is not None:
                    return str(remembered)
        return None

    def insert_status_events(self, rows: Sequence[dict[str, Any]]) -> set[SubmissionKey]:
        new: set[SubmissionKey] = set()
        for row in rows:
            key = (row["actor"], row["message_id"])
            if key not in self.statuses_seen([row["message_id"]]):
                self.events.append(dict(row))
                new.add(key)
        return new

    def set_states(self, new_states: dict[int, str]) -> None:
        for did, state in new_states.items():
            self.deliveries[did]["state"] = state

    def insert_events(self, rows: Sequence[dict[str, Any]]) -> None:
        self.events.extend(dict(r) for r in rows)

    def stored_receipts(
        self, keys: Sequence[SubmissionKey], kind: str
    ) -> dict[SubmissionKey, tuple[str, dict[str, Any]]]:
        out = {}
        for r in self.receipts:  # in insertion order: the newest wins
            key = (r["agency"], r["in_reply_to"])
            if key in keys and r["kind"] == kind:
                out[key] = (r["receipt_id"], json.loads(r["body"]))
        return out

    def insert_receipts(self, rows: Sequence[dict[str, Any]]) -> set[str]:
        held = {r["receipt_id"] for r in self.receipts}
        new = set()
        for row in rows:
            if row["receipt_id"] not in held:
                self.receipts.append(dict(row))
                held.add(row["receipt_id"])
                new.add(row["receipt_id"])
        return new

    def insert_rejections(self, rows: Sequence[dict[str, Any]]) -> None:
        self.rejections.extend(dict(r) for r in rows)
