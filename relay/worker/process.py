"""One batch of outbox messages → one database transaction → the messages to publish.

The service layer of the relay: it reads, checks and routes every message of a batch with the
pure rules of :mod:`relay.domain`, records everything in the caller's transaction with the
multi-row statements of :mod:`relay.worker.store`, and answers, per outbox message, what must
be published (and confirmed) before that message may be acked. Nothing here talks to RabbitMQ.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import structlog
from sqlalchemy import Connection

from relay.blobs import service as blobs
from relay.deadlines.calendar import Dating
from relay.document_headers import header_columns
from relay.domain import events as ev
from relay.domain import states
from relay.domain.intake import Envelope, Refusal, read_submission
from relay.domain.outgoing import (
    Outgoing,
    delivery,
    delivery_message_id,
    receipt_message_id,
    receipt_uuid,
)
from relay.domain.routing import Directory, resolve_recipient, sender_refusal
from relay.domain.statuses import route_status
from relay.duplicates import DuplicateDetector, duplicate_event, keys_of
from relay.duplicates import reason as duplicate_reason
from relay.federation.store import Links
from relay.worker import store
from relay.worker.repository import BatchRepository, SqlBatchRepository
from schemas import (
    BusinessType,
    Document,
    Receipt,
    ReceiptKind,
    RecipientOutcome,
    RecipientResult,
    Status,
)
from schemas import topology as t
from schemas.directory import TYPE_DIRECTORY
from schemas.envelope import encode_message
from schemas.urgency import is_urgent_document, is_urgent_priority

log = structlog.get_logger()

#: What became of an outbox message (:attr:`Handled.outcome`; logs and tests).
ACCEPTED: Final = "accepted"
DUPLICATE: Final = "duplicate"  # a submission already stored: answered again as it was
REJECTED: Final = "rejected"


@dataclass(slots=True)
class Inbound:
    """One message taken from an outbox, as the broker handed it over."""

    tag: int  # delivery tag on the consuming channel
    queue: str
    envelope: Envelope
    #: the message's properties as JSON, kept with a rejection (built only when needed)
    properties: Callable[[], dict[str, Any]]
    #: when it was taken in (:func:`time.monotonic`; :mod:`relay.worker.timings`)
    received: float = 0.0


@dataclass(slots=True)
class Publish:
    """One message to publish; ``delivery_id`` becomes ``queued`` once it is confirmed."""

    outgoing: Outgoing
    delivery_id: int | None = None


@dataclass
class Handled:
    """What must be published and confirmed before the outbox message may be acked."""

    inbound: Inbound | None
    publishes: list[Publish] = field(default_factory=list)
    outcome: str = ""  # ACCEPTED | DUPLICATE | REJECTED, or a chunk's type (logs and tests)


def _receipt_outgoing(
    owner: str, submission_id: str, receipt_body: bytes, kind: str, message_id: str | None = None
) -> Outgoing:
    """``message_id``: the receipt's id (stored or computed); derived from ``owner``'s
    submission and ``kind`` when not given."""
    return Outgoing(
        route_to=owner,
        message_id=message_id or receipt_message_id(submission_id, kind, by=owner),
        message_type=t.TYPE_RECEIPT,
        body=receipt_body,
        correlation_id=submission_id or None,
    )


def _receipt_json(receipt: Receipt) -> str:
    """The receipt's JSON text: stored as is (jsonb) and published as is."""
    return encode_message(receipt).decode("utf-8")


def _receipt_row(
    owner: str, receipt: Receipt, body: str, receipt_id: str | None = None
) -> dict[str, Any]:
    return {
        "receipt_id": receipt_id or str(receipt.receipt_id),
        "agency": owner,
        "in_reply_to": receipt.in_reply_to,
        "kind": receipt.kind.value,
        "body": body,
    }


def _deliver(p: store.PendingDelivery) -> Publish:
    return Publish(
        outgoing=delivery(
            submission_id=p.submission_id,
            sender=p.submitted_by,
            recipient=p.recipient,
            route_to=p.route_to,
            message_type=t.TYPE_DOCUMENT,
            body=p.payload,
            message_id=p.message_id,  # as stored: an older delivery keeps its older id
            urgent=is_urgent_priority(p.priority),  # the lane its first copy took
        ),
        delivery_id=p.delivery_id,
    )


def republish_pending(pending: Sequence[store.PendingDelivery]) -> list[Publish]:
    """Copies of deliveries that are still pending (the sweep uses this too)."""
    return [_deliver(p) for p in pending]


class BatchProcessor:
    """Handles one batch inside one transaction: the one ``repo`` works in (the caller builds
    a :class:`~relay.worker.repository.SqlBatchRepository` on its transaction's connection)."""

    def __init__(
        self,
        repo: BatchRepository | Connection,
        max_bytes: int,
        publishing: Container[int] = frozenset(),
        dating: Dating | None = None,
    ) -> None:
        #: a bare connection (a test or a tool working in its own transaction) gets the SQL one
        self.repo = repo if isinstance(repo, BatchRepository) else SqlBatchRepository(repo)
        self.max_bytes = max_bytes
        #: due times of the 01 and 03 of each delivery stored (None: the deadlines job's)
        self.dating = dating
        #: deliveries this relay has published and awaits the confirm of: not published again
        self.publishing = publishing
        self.receipt_rows: list[dict[str, Any]] = []
        #: the time stamped on this batch's receipts (the clock is read once per batch)
        self.now = dt.datetime.now(dt.UTC)
        self.rejection_rows: list[dict[str, Any]] = []
        self.links = Links()

    # -- entry point --------------------------------------------------------------------

    def run(self, batch: Sequence[Inbound]) -> list[Handled]:
        handled = [Handled(inbound=m) for m in batch]
        decoded: list[tuple[int, Document | Status]] = []
        foreign: list[tuple[int, Refusal]] = []
        self._chunks(batch, handled)  # issue 17: chunks and chunk requests (relay/blobs)
        for i, m in enumerate(batch):
            if handled[i].outcome:
                continue
            if m.envelope.message_type == TYPE_DIRECTORY:  # relay/federation: a hub's units
                self._directory_push(handled[i])
                continue
            result = read_submission(m.envelope, self.max_bytes)
            if isinstance(result, Refusal):
                if result.publisher is not None:
                    foreign.append((i, result))
                else:
                    self._reject(handled[i], result.reason)
            else:
                decoded.append((i, result))

        codes: set[str] = set()
        for m in batch:
            codes.add(m.envelope.owner)
        for _, msg in decoded:
            codes.add(msg.sender.organ_id)
            if isinstance(msg, Document):
                codes.update(msg.recipient_codes())
        codes.update(r.publisher for _, r in foreign if r.publisher is not None)
        # the directory, and the links to other hubs (relay/federation)
        directory, self.links = self.repo.routing(codes)
        for i, foreign_refusal in foreign:
            # Never a receipt to the outbox's owner about a message it did not send (it may
            # even carry the id of the owner's own submission); the real publisher is told
            # if it is a connected agency, and the message is kept either way.
            entry = directory.get(foreign_refusal.publisher or "")
            tell = entry.code if entry is not None and entry.connected else None
            self._reject(handled[i], foreign_refusal.reason, answer_to=tell)

        docs: list[tuple[int, Document]] = []
        stats: list[tuple[int, Status]] = []
        for i, msg in decoded:
            refusal = sender_refusal(
                batch[i].envelope.owner, msg.sender.organ_id, directory, links=self.links.codes
            )
            if refusal is None and isinstance(msg, Document):
                refusal = self.repo.missing_chunks(batch[i].envelope.owner, msg)
            if refusal is not None:
                self._reject(handled[i], refusal, document_id=msg.document_id)
            elif isinstance(msg, Document):
                docs.append((i, msg))
            else:
                stats.append((i, msg))

        self._documents(batch, handled, docs, directory)
        self._statuses(batch, handled, stats)
        self._flush_rows()
        return handled

    def _chunks(self, batch: Sequence[Inbound], handled: list[Handled]) -> None:
        at = [i for i, m in enumerate(batch) if blobs.handles(m.envelope)]
        answers = self.repo.answer_chunks([batch[i].envelope for i in at]) if at else []
        for i, a in zip(at, answers, strict=True):
            if a.refusal is not None:
                self._reject(handled[i], a.refusal, answer_to=True if a.tell_owner else None)
            else:
                handled[i].publishes = [Publish(outgoing=o) for o in a.publishes]
                handled[i].outcome = batch[i].envelope.message_type or "chunk"

    def _directory_push(self, h: Handled) -> None:
        assert h.inbound is not None
        result = self.repo.apply_directory_push(h.inbound.envelope, self.now)
        if isinstance(result, Refusal):
            # a push found in another agency's outbox: kept, and its owner is never answered
            self._reject(h, result.reason, answer_to=None if result.publisher else True)
            return
        body = _receipt_json(result)
        self.receipt_rows.append(_receipt_row(h.inbound.envelope.owner, result, body))
        out = _receipt_outgoing(
            result.sender or "", result.in_reply_to, body.encode(), ReceiptKind.ACCEPTED.value
        )
        h.publishes.append(Publish(outgoing=out))
        h.outcome = ACCEPTED

    # -- rejections ---------------------------------------------------------------------

    def _reject(
        self,
        h: Handled,
        reason: str,
        *,
        document_id: str | None = None,
        bare: bool = False,
        answer_to: str | bool | None = True,
    ) -> None:
        """Refuse ``h``'s message: a ``rejected`` receipt, and the message kept with the reason.

        ``answer_to``: whose inbox gets the receipt: the outbox's owner (``True``), another
        agency (a code: the real publisher of a message found in someone else's outbox), or
        nobody (``None``). ``bare``: the last resort when storing it failed once: its
        properties are left out (the raw body is still kept)."""
        assert h.inbound is not None
        env = h.inbound.envelope
        to = env.owner if answer_to is True else (answer_to or None)
        submission_id = env.message_id or ""
        kind = env.message_type if env.message_type in (t.TYPE_DOCUMENT, t.TYPE_STATUS) else None
        # The receipt is about the publisher's message: its id is in the publisher's space.
        by = to or env.user_id or env.owner
        receipt = Receipt(
            at=self.now,
            receipt_id=(
                receipt_uuid(submission_id, ReceiptKind.REJECTED.value, by=by)
                if submission_id
                else uuid.uuid4()
            ),
            kind=ReceiptKind.REJECTED,
            in_reply_to=submission_id,
            message_type=kind,
            document_id=document_id,
            sender=env.owner,
            reason=reason,
        )
        body = _receipt_json(receipt)
        if to is not None:
            self.receipt_rows.append(_receipt_row(to, receipt, body))
        self.rejection_rows.append(
            {
                "message_id": env.message_id,
                "queue": h.inbound.queue,
                "user_id": env.user_id,
                "message_type": env.message_type,
                "reason": reason,
                "properties": None if bare else h.inbound.properties(),
                "body": env.body,
                "receipt": json.loads(body) if to is not None else None,
                # stored once per receipt (a redelivered rejection is not kept twice); a
                # message nobody is told about is kept each time it is seen
                "_receipt_id": str(receipt.receipt_id) if to is not None else None,
            }
        )
        if to is not None:
            out = _receipt_outgoing(
                to,
                submission_id,
                body.encode("utf-8"),
                ReceiptKind.REJECTED.value,
                str(receipt.receipt_id),
            )
            h.publishes.append(Publish(outgoing=out))
        h.outcome = REJECTED
        log.warning(
            "submission.rejected",
            message_id=env.message_id,
            sender=env.owner,
            document_id=document_id,
            reason=reason,
        )

    # -- documents ----------------------------------------------------------------------

    def _due_columns(self, priority: int | None) -> dict[str, Any]:
        """The due-time columns of a delivery of a document of ``priority`` stored now: dated
        in the insert, not rewritten by the deadlines job a few seconds later."""
        if self.dating is None:
            return {}
        due = self.dating(self.now, priority)
        return {"ack_due_at": due.ack, "register_due_at": due.register, "urgent": due.urgent}

    def _documents(
        self,
        batch: Sequence[Inbound],
        handled: list[Handled],
        docs: list[tuple[int, Document]],
        directory: Directory,
    ) -> None:
        if not docs:
            return
        by_index = dict(docs)
        # A submission is (submitting agency, message_id): the same id from two agencies is two
        # submissions (issue 12 item 4).
        first: dict[tuple[str, str], int] = {}  # submission -> index of its first copy here
        # Phụ lục VI III.1.h
        duplicates = DuplicateDetector(self.repo.registered_documents(keys_of(d for _, d in docs)))
        duplicate_of: dict[tuple[str, str], str] = {}
        rows: list[dict[str, Any]] = []
        plans: dict[tuple[str, str], tuple[list[RecipientResult], Receipt, str, str]] = {}
        priorities: dict[tuple[str, str], int | None] = {}
        for i, doc in docs:
            env = batch[i].envelope
            key = (env.owner, env.message_id or "")
            if key in first:
                continue
            refusal = self._change_refusal(doc)
            if refusal is not None:
                self._reject(handled[i], refusal, document_id=doc.document_id)
                continue
            first[key] = i
            owner, submission_id = key
            up = self.links.upstream_for(owner)
            results = [resolve_recipient(c, directory, upstream=up) for c in doc.recipient_codes()]
            rid = receipt_message_id(submission_id, ReceiptKind.ACCEPTED.value, by=owner)
            if (earlier := duplicates.check(doc)) is not None:
                duplicate_of[key] = earlier
            receipt = Receipt(
                at=self.now,
                receipt_id=rid,  # pydantic reads the UUID text
                kind=ReceiptKind.ACCEPTED,
                in_reply_to=submission_id,
                message_type=t.TYPE_DOCUMENT,
                document_id=doc.document_id,
                sender=doc.sender.organ_id,
                recipients=results,
                duplicate_of=duplicate_of.get(key),
                reason=duplicate_reason(doc, duplicate_of[key]) if key in duplicate_of else None,
            )
            body = _receipt_json(receipt)
            plans[key] = (results, receipt, body, rid)
            headers = header_columns(doc)  # Decree 30 deadlines, duplicates, console
            priorities[key] = headers["priority"]
            rows.append(
                {
                    "message_id": submission_id,
                    "document_id": doc.document_id,
                    "business_type": int(doc.business_type),
                    "sender": doc.sender.organ_id,
                    "submitted_by": owner,
                    "subject": doc.subject,
                    **headers,
                    "payload": env.body,
                }
            )
        inserted = self.repo.insert_documents(rows)

        delivery_rows: list[dict[str, Any]] = []
        delivery_mids: dict[tuple[int, str], str] = {}
        event_rows: list[dict[str, Any]] = []
        change_refs: list[tuple[str, str, int, str, str]] = []
        for key, pk in inserted.items():
            i = first[key]
            owner, submission_id = key
            doc = by_index[i]
            results, receipt, body, rid_s = plans[key]
            due = self._due_columns(priorities[key])
            for r in results:
                if r.outcome is RecipientOutcome.QUEUED and r.route_to is not None:
                    dmid = delivery_message_id(submission_id, r.code, by=owner)
                    delivery_mids[(pk, r.code)] = dmid
                    delivery_rows.append(
                        {
                            "document_pk": pk,
                            "recipient": r.code,
                            "route_to": r.route_to,
                            "message_id": dmid,
                            "state": states.PENDING,
                            **due,
                        }
                    )
            self.receipt_rows.append(_receipt_row(owner, receipt, body, rid_s))
            if key in duplicate_of:
                event_rows.append(duplicate_event(pk, doc, duplicate_of[key], doc.sender.organ_id))
            kind = ev.CHANGE_EVENT.get(doc.business_type)
            if kind is not None:
                for ref in _referenced_documents(doc):
                    for r in results:
                        change_refs.append((ref, r.code, pk, kind, doc.sender.organ_id))

        delivery_ids = self.repo.insert_deliveries(delivery_rows)
        if change_refs:
            # Only the original sender's own deliveries (issue 12 item 8).
            found = self.repo.earlier_deliveries(
                [(ref, rcpt, pk, sender) for ref, rcpt, pk, _, sender in change_refs]
            )
            for n, did, old_pk in found:
                ref, rcpt, new_pk, kind, _ = change_refs[n]
                event_rows.append(
                    {
                        "document_pk": old_pk,
                        "delivery_id": did,
                        "kind": kind,
                        "actor": rcpt,
                        "detail": {"by_document_pk": new_pk, "document_id": ref},
                    }
                )
        self.repo.insert_events(event_rows)

        for key, pk in inserted.items():
            i = first[key]
            owner, submission_id = key
            env = batch[i].envelope
            results, receipt, body, rid_s = plans[key]
            h = handled[i]
            for r in results:
                if r.outcome is RecipientOutcome.QUEUED and r.route_to is not None:
                    delivery_pk = delivery_ids.get((pk, r.code))
                    h.publishes.append(
                        Publish(
                            outgoing=delivery(
                                submission_id=submission_id,
                                sender=owner,
                                recipient=r.code,
                                route_to=r.route_to,
                                message_type=t.TYPE_DOCUMENT,
                                body=env.body,
                                message_id=delivery_mids[(pk, r.code)],
                                urgent=is_urgent_document(by_index[i]),  # urgent lane
                            ),
                            delivery_id=delivery_pk,
                        )
                    )
            h.publishes.append(
                Publish(
                    outgoing=_receipt_outgoing(
                        owner, submission_id, body.encode(), ReceiptKind.ACCEPTED.value, rid_s
                    )
                )
            )
            h.outcome = ACCEPTED
            log.debug(
                "document.accepted",
                message_id=submission_id,
                document_id=receipt.document_id,
                sender=receipt.sender,
                recipients=len(results),
            )

        # Submissions already stored: a redelivery after a crash, or the adapter sent it twice.
        def key_of(i: int) -> tuple[str, str]:
            return (batch[i].envelope.owner, batch[i].envelope.message_id or "")

        dup_indexes = [
            (i, d)
            for i, d in docs
            if handled[i].outcome != REJECTED
            and (first.get(key_of(i)) != i or key_of(i) not in inserted)
        ]
        if not dup_indexes:
            return
        dup_keys = sorted({key_of(i) for i, _ in dup_indexes} - inserted.keys())
        existing = self.repo.existing_documents(dup_keys)
        # The receipt each stored submission got, sent again as it was (found by what it
        # answers, so a receipt stored under an older id scheme is found too).
        stored_receipts = self.repo.stored_receipts(list(existing), ReceiptKind.ACCEPTED.value)
        pending = self.repo.pending_deliveries_of([s.pk for s in existing.values()])
        by_pk: dict[int, list[store.PendingDelivery]] = {}
        for p in pending:
            by_pk.setdefault(p.document_pk, []).append(p)
        republished: set[int] = set()
        for i, doc in dup_indexes:
            key = key_of(i)
            owner, submission_id = key
            h = handled[i]
            if key in inserted:
                # A second copy of a submission this very batch stored.
                h.publishes.append(
                    Publish(
                        outgoing=_receipt_outgoing(
                            owner,
                            submission_id,
                            plans[key][2].encode(),
                            ReceiptKind.ACCEPTED.value,
                            plans[key][3],
                        )
                    )
                )
                h.outcome = DUPLICATE
                continue
            stored = existing.get(key)
            if stored is None:
                raise RuntimeError(
                    f"document {submission_id!r} of {owner} conflicted but is not stored"
                )
            if stored.pk not in republished:
                republished.add(stored.pk)
                again = [
                    p for p in by_pk.get(stored.pk, []) if p.delivery_id not in self.publishing
                ]
                h.publishes.extend(republish_pending(again))
            receipt_found = stored_receipts.get(key)
            if receipt_found is not None:
                stored_id, stored_body = receipt_found
                h.publishes.append(
                    Publish(
                        outgoing=_receipt_outgoing(
                            owner,
                            submission_id,
                            json.dumps(stored_body, ensure_ascii=False).encode(),
                            ReceiptKind.ACCEPTED.value,
                            stored_id,
                        )
                    )
                )
            h.outcome = DUPLICATE
            log.info("document.duplicate", message_id=submission_id, document_id=doc.document_id)

    def _change_refusal(self, doc: Document) -> str | None:
        """Why a revoke/update/replace may not name the documents it names, or None.

        Only a document's own sender may revoke, update or replace it (issue 12 item 8): a
        DocumentId that is known only from other senders is refused; one never seen is let
        through (it changes nothing the hub holds)."""
        if doc.business_type not in ev.CHANGE_EVENT:
            return None
        refs = _referenced_documents(doc)
        senders = self.repo.document_senders(refs)
        sender = doc.sender.organ_id
        for ref in refs:
            others = senders.get(ref, set())
            if others and sender not in others:
                action = ev.CHANGE_EVENT[doc.business_type].removesuffix("d")
                return (
                    f"business: document {ref!r} was sent by {', '.join(sorted(others))}, not "
                    f"by {sender}; only its sender may {action} it"
                )
        return None

    # -- statuses -----------------------------------------------------------------------

    def _statuses(
        self, batch: Sequence[Inbound], handled: list[Handled], stats: list[tuple[int, Status]]
    ) -> None:
        if not stats:
            return
        candidates, known = self.repo.status_candidates([s.document_id for _, s in stats])
        # A status is (its sender, message_id): the same id from another agency is another
        # status (issue 12 item 4).
        submission_ids = [batch[i].envelope.message_id or "" for i, _ in stats]
        seen_before = self.repo.statuses_seen(submission_ids)
        current: dict[int, str] = {}
        before_recall: dict[int, str | None] = {}
        for refs in candidates.values():
            for ref in refs:
                current[ref.delivery_id] = ref.state
        new_states: dict[int, str] = {}
        event_rows: list[dict[str, Any]] = []
        resend_receipts: list[int] = []
        done_in_batch: set[tuple[str, str]] = set()
        for i, st in stats:
            env = batch[i].envelope
            submission_id = env.message_id or ""
            key = (st.sender.organ_id, submission_id)
            route = route_status(
                document_id=st.document_id,
                code=st.status_code,
                status_sender=st.sender.organ_id,
                addressee=st.response_for.organ_id,
                candidates=candidates.get(st.document_id, []),
                document_known=st.document_id in known,
            )
            if isinstance(route, Refusal):
                self._reject(handled[i], route.reason, document_id=st.document_id)
                continue
            h = handled[i]
            h.publishes.append(
                Publish(
                    outgoing=delivery(
                        submission_id=submission_id,
                        sender=env.owner,
                        recipient=route.addressee,
                        route_to=route.route_to,
                        message_type=t.TYPE_STATUS,
                        body=env.body,
                    )
                )
            )
            receipt = Receipt(
                at=self.now,
                receipt_id=receipt_uuid(submission_id, ReceiptKind.ACCEPTED.value, by=env.owner),
                kind=ReceiptKind.ACCEPTED,
                in_reply_to=submission_id,
                message_type=t.TYPE_STATUS,
                document_id=st.document_id,
                sender=st.sender.organ_id,
                recipients=[
                    RecipientResult(
                        code=route.addressee,
                        outcome=RecipientOutcome.QUEUED,
                        route_to=route.route_to,
                    )
                ],
            )
            if key in seen_before or key in done_in_batch:
                # Already recorded: forward it again (same message id) and resend the receipt.
                resend_receipts.append(i)
                h.outcome = DUPLICATE
                continue
            done_in_batch.add(key)
            did = route.delivery.delivery_id
            was = current.get(did, route.delivery.state)
            remembered = before_recall.get(did)
            if was == states.RECALL_REQUESTED and did not in before_recall:
                remembered = self.repo.before_recall_of(did)
            move = states.after_status(was, st.status_code, before_recall=remembered)
            if move.moved:
                current[did] = move.state
                new_states[did] = move.state
                if move.before_recall is not None:
                    before_recall[did] = move.before_recall
            staff = st.staff_info.staff if st.staff_info else None
            event_rows.append(
                {
                    "document_pk": route.delivery.document_pk,
                    "delivery_id": did,
                    "kind": ev.STATUS,
                    "status_code": st.status_code,
                    "description": st.description or st.status_text,
                    "staff": staff,
                    "actor": st.sender.organ_id,
                    "message_id": submission_id,
                    "detail": {
                        "from_state": was,
                        "to_state": move.state,
                        "moved": move.moved,
                        "before_recall": move.before_recall,
                        "addressee": route.addressee,
                        "timestamp": st.timestamp.isoformat(),
                    },
                }
            )
            body = _receipt_json(receipt)
            self.receipt_rows.append(_receipt_row(env.owner, receipt, body))
            h.publishes.append(
                Publish(
                    outgoing=_receipt_outgoing(
                        env.owner,
                        submission_id,
                        body.encode(),
                        ReceiptKind.ACCEPTED.value,
                        str(receipt.receipt_id),
                    )
                )
            )
            h.outcome = ACCEPTED
            log.debug(
                "status.routed",
                message_id=submission_id,
                document_id=st.document_id,
                sender=st.sender.organ_id,
                recipient=route.addressee,
                status_code=st.status_code,
                state=move.state,
            )
        new = self.repo.insert_status_events(event_rows)
        lost = {(r["actor"], r["message_id"]) for r in event_rows} - new
        if lost:
            # Another relay recorded the same status between our check and our insert: its
            # state change stands; ours is dropped with the event.
            for r in event_rows:
                if (r["actor"], r["message_id"]) in lost and r["detail"]["moved"]:
                    new_states.pop(r["delivery_id"], None)
        self.repo.set_states(new_states)
        if resend_receipts:
            wanted = [
                (batch[i].envelope.owner, batch[i].envelope.message_id or "")
                for i in resend_receipts
            ]
            bodies = self.repo.stored_receipts(wanted, ReceiptKind.ACCEPTED.value)
            for i, key in zip(resend_receipts, wanted, strict=True):
                found = bodies.get(key)
                if found is not None:
                    handled[i].publishes.append(
                        Publish(
                            outgoing=_receipt_outgoing(
                                key[0],
                                key[1],
                                json.dumps(found[1], ensure_ascii=False).encode(),
                                ReceiptKind.ACCEPTED.value,
                                found[0],
                            )
                        )
                    )

    def reject_alone(self, h: Handled, reason: str, *, bare: bool = False) -> None:
        """Refuse ``h``'s message on its own and store the rejection at once: the worker's last
        resort for a message it could not process (see :meth:`_reject` for ``bare``)."""
        self._reject(h, reason, bare=bare)
        self._flush_rows()

    # -- storing what was gathered ------------------------------------------------------

    def _flush_rows(self) -> None:
        new_receipts = self.repo.insert_receipts(self.receipt_rows)
        rejections = []
        for row in self.rejection_rows:
            rid = row.pop("_receipt_id")
            if rid is None or rid in new_receipts:  # a rejection seen again is not stored twice
                rejections.append(row)
        self.repo.insert_rejections(rejections)


def _referenced_documents(doc: Document) -> list[str]:
    """The earlier documents a revoke/update/replace refers to."""
    refs: list[str] = []
    if doc.business_type is BusinessType.REPLACE:
        refs.extend(r.document_id for r in doc.business.replacement_info_list)
    else:
        if doc.business.document_id:
            refs.append(doc.business.document_id)
        refs.extend(r.document_id for r in doc.response_for)
    if not refs:
        refs.append(doc.document_id)
    return sorted(set(refs))
