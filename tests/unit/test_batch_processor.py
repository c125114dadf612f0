"""One batch of outbox messages through :class:`BatchProcessor`, on the in-memory repository:
routing, idempotency, rejections and status rules, without PostgreSQL or RabbitMQ."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from relay.deadlines.calendar import Dating, WorkCalendar, due_times
from relay.domain import events as ev
from relay.domain import states
from relay.domain.intake import Envelope
from relay.domain.routing import ACTIVE, Entry
from relay.worker.process import BatchProcessor, Handled, Inbound
from schemas import Document, ReceiptKind, RecipientOutcome, Status
from schemas import topology as t
from schemas.document import OtherInfo
from schemas.envelope import encode_message
from tests.unit.fakes.batch_repository import FakeBatchRepository

A = "000.00.00.H41"  # sends
B = "000.00.00.G22"  # receives
C = "000.00.00.G23"  # receives too
A_UNIT = "000.01.00.H41"  # a unit hosted by A (no adapter of its own)
B_UNIT = "000.01.00.G22"  # a unit hosted by B
MAX_BYTES = 1024 * 1024
QUEUED = RecipientOutcome.QUEUED.value


def hub() -> FakeBatchRepository:
    return FakeBatchRepository(
        [
            Entry(A, None, ACTIVE),
            Entry(B, None, ACTIVE),
            Entry(C, None, ACTIVE),
            Entry(A_UNIT, A, ACTIVE),
            Entry(B_UNIT, B, ACTIVE),
        ]
    )


def document(sender: str, recipients: list[str], **fields: Any) -> Document:
    return Document.model_validate(
        {
            "document_id": fields.pop("document_id", f"{sender},2026/11/30,{uuid.uuid4().hex}/VP"),
            "sender": {"organ_id": sender},
            "recipients": [{"organ_id": r} for r in recipients],
            "subject": "Về việc thử nghiệm",
            **fields,
        }
    )


def status(sender: str, addressee: str, document_id: str, code: str) -> Status:
    return Status.model_validate(
        {
            "sender": {"organ_id": sender},
            "response_for": {"organ_id": addressee, "document_id": document_id},
            "status_code": code,
            "timestamp": dt.datetime.now(dt.UTC).isoformat(),
        }
    )


def inbound(
    owner: str,
    message: Document | Status,
    *,
    message_id: str | None = None,
    user_id: str | None = None,
) -> Inbound:
    kind = t.TYPE_DOCUMENT if isinstance(message, Document) else t.TYPE_STATUS
    env = Envelope(
        owner=owner,
        message_id=message_id or str(uuid.uuid4()),
        user_id=user_id or owner,
        message_type=kind,
        body=encode_message(message),
    )
    return Inbound(tag=0, queue=t.outbox_queue(owner), envelope=env, properties=dict)


def run(
    repo: FakeBatchRepository, *batch: Inbound, publishing: set[int] | None = None
) -> list[Handled]:
    return BatchProcessor(repo, MAX_BYTES, publishing or set()).run(list(batch))


def receipts(h: Handled) -> list[dict[str, Any]]:
    """The receipts ``h`` publishes, decoded, with where they go."""
    return [
        {**json.loads(p.outgoing.body), "_to": p.outgoing.route_to, "_id": p.outgoing.message_id}
        for p in h.publishes
        if p.outgoing.message_type == t.TYPE_RECEIPT
    ]


def copies(h: Handled) -> list[tuple[str, str]]:
    """(inbox, message type) of every copy ``h`` publishes that is not a receipt."""
    return sorted(
        (p.outgoing.route_to, p.outgoing.message_type)
        for p in h.publishes
        if p.outgoing.message_type != t.TYPE_RECEIPT
    )


# -- routing ------------------------------------------------------------------------------


def test_a_document_is_copied_to_each_recipients_inbox_and_the_sender_gets_one_receipt() -> None:
    repo = hub()
    [h] = run(repo, inbound(A, document(A, [B, C, B_UNIT])))

    assert h.outcome == "accepted"
    # the hosted unit's copy goes to its host's inbox
    assert copies(h) == [(B, t.TYPE_DOCUMENT), (B, t.TYPE_DOCUMENT), (C, t.TYPE_DOCUMENT)]
    [receipt] = receipts(h)
    assert receipt["_to"] == A and receipt["kind"] == ReceiptKind.ACCEPTED.value
    assert {r["code"]: r["outcome"] for r in receipt["recipients"]} == {
        B: QUEUED,
        C: QUEUED,
        B_UNIT: QUEUED,
    }
    assert sorted(d["recipient"] for d in repo.deliveries.values()) == sorted([B, C, B_UNIT])
    assert {d["state"] for d in repo.deliveries.values()} == {states.PENDING}
    # each copy names the delivery it confirms
    ids = {p.delivery_id for p in h.publishes if p.outgoing.message_type == t.TYPE_DOCUMENT}
    assert ids == set(repo.deliveries)


def test_each_delivery_is_dated_as_it_is_stored_by_its_documents_priority() -> None:
    """Due times of 01 and 03 go into the insert, so the deadlines job does not rewrite every
    delivery row a few seconds later (it still dates what was stored without them)."""
    repo = hub()
    calendar = WorkCalendar()
    proc = BatchProcessor(repo, MAX_BYTES, set(), Dating(calendar, 600.0))
    normal = document(A, [B, C])
    urgent = document(A, [B], other_info=OtherInfo(priority=1))
    proc.run([inbound(A, normal), inbound(A, urgent)])

    pk_of = {d["document_id"]: pk for pk, d in repo.documents.items()}
    dated = {
        (d["document_pk"], d["recipient"]): (d["ack_due_at"], d["register_due_at"], d["urgent"])
        for d in repo.deliveries.values()
    }
    day = due_times(proc.now, None, calendar, 600.0).ack
    soon = proc.now + dt.timedelta(seconds=600)
    assert day > soon  # the end of the next working day, not ten minutes
    assert dated == {
        (pk_of[normal.document_id], B): (day, day, False),
        (pk_of[normal.document_id], C): (day, day, False),
        (pk_of[urgent.document_id], B): (soon, soon, True),
    }
    # without a calendar (a tool, a test) the deadlines job dates them later
    plain = hub()
    run(plain, inbound(A, document(A, [B])))
    assert [d.get("ack_due_at") for d in plain.deliveries.values()] == [None]


def test_a_recipient_the_directory_does_not_know_gets_no_copy_and_the_receipt_says_why() -> None:
    repo = hub()
    [h] = run(repo, inbound(A, document(A, [B, "000.99.99.Z99"])))

    assert copies(h) == [(B, t.TYPE_DOCUMENT)]
    outcomes = {r["code"]: r["outcome"] for r in receipts(h)[0]["recipients"]}
    assert outcomes == {B: QUEUED, "000.99.99.Z99": RecipientOutcome.UNKNOWN.value}
    assert [d["recipient"] for d in repo.deliveries.values()] == [B]


def test_a_suspended_recipient_gets_no_copy() -> None:
    repo = hub()
    repo.agencies[C] = Entry(C, None, "suspended")
    [h] = run(repo, inbound(A, document(A, [B, C])))

    assert copies(h) == [(B, t.TYPE_DOCUMENT)]
    outcomes = {r["code"]: r["outcome"] for r in receipts(h)[0]["recipients"]}
    assert outcomes[C] == RecipientOutcome.SUSPENDED.value


def test_an_agency_may_send_as_a_unit_it_hosts() -> None:
    repo = hub()
    [h] = run(repo, inbound(A, document(A_UNIT, [B])))
    assert h.outcome == "accepted"
    assert copies(h) == [(B, t.TYPE_DOCUMENT)]


# -- idempotency --------------------------------------------------------------------------


def test_the_same_submission_twice_in_one_batch_is_stored_once_and_answered_twice() -> None:
    repo = hub()
    first = inbound(A, document(A, [B, C]))
    again = Inbound(tag=1, queue=first.queue, envelope=first.envelope, properties=dict)

    h1, h2 = run(repo, first, again)

    assert (h1.outcome, h2.outcome) == ("accepted", "duplicate")
    assert len(repo.documents) == 1 and len(repo.deliveries) == 2
    assert copies(h2) == []  # the first copy publishes them
    assert [r["_id"] for r in receipts(h2)] == [r["_id"] for r in receipts(h1)]
    assert len(repo.receipts) == 1


def test_a_submission_seen_again_republishes_only_its_unconfirmed_copies() -> None:
    repo = hub()
    message = inbound(A, document(A, [B, C]))
    [h1] = run(repo, message)
    b = repo.delivery_of(json.loads(message.envelope.body)["document_id"], B)
    b_id = next(i for i, d in repo.deliveries.items() if d is b)
    repo.confirm([b_id])  # B's copy was confirmed before the crash, C's was not

    [h2] = run(repo, message)

    assert h2.outcome == "duplicate"
    assert copies(h2) == [(C, t.TYPE_DOCUMENT)]
    assert len(repo.documents) == 1 and len(repo.deliveries) == 2
    # the very receipt the first time got, sent again as stored
    assert receipts(h2) == receipts(h1)


def test_an_urgent_documents_unconfirmed_copy_goes_again_to_the_urgent_lane() -> None:
    repo = hub()
    message = inbound(A, document(A, [B], other_info=OtherInfo(priority=1)))
    [h1] = run(repo, message)

    [h2] = run(repo, message)  # redelivered after a crash: the copy was not confirmed

    first = [p.outgoing.routing_key for p in h1.publishes if p.delivery_id is not None]
    again = [p.outgoing.routing_key for p in h2.publishes if p.delivery_id is not None]
    assert first == again == [t.deliver_routing_key(B, urgent=True)]


def test_a_copy_whose_confirm_is_awaited_is_not_published_again() -> None:
    repo = hub()
    message = inbound(A, document(A, [B]))
    run(repo, message)

    [h2] = run(repo, message, publishing=set(repo.deliveries))

    assert h2.outcome == "duplicate" and copies(h2) == []


def test_the_same_message_id_from_two_agencies_is_two_submissions() -> None:
    repo = hub()
    mid = str(uuid.uuid4())
    ha, hc = run(
        repo,
        inbound(A, document(A, [B]), message_id=mid),
        inbound(C, document(C, [B]), message_id=mid),
    )

    assert (ha.outcome, hc.outcome) == ("accepted", "accepted")
    assert len(repo.documents) == 2 and len(repo.deliveries) == 2
    assert receipts(ha)[0]["_id"] != receipts(hc)[0]["_id"]
    assert [r["_to"] for r in receipts(ha) + receipts(hc)] == [A, C]


# -- rejections ---------------------------------------------------------------------------


def test_a_sender_outside_the_directory_is_refused_and_the_message_kept() -> None:
    repo = hub()
    [h] = run(repo, inbound(A, document("000.98.98.Z98", [B])))

    assert h.outcome == "rejected" and copies(h) == []
    [receipt] = receipts(h)
    assert receipt["_to"] == A and receipt["kind"] == ReceiptKind.REJECTED.value
    assert "not in the directory" in receipt["reason"]
    assert repo.documents == {} and len(repo.rejections) == 1


def test_sending_as_another_agencys_unit_is_refused() -> None:
    repo = hub()
    [h] = run(repo, inbound(A, document(B_UNIT, [C])))
    assert h.outcome == "rejected"
    assert "neither" in receipts(h)[0]["reason"] and repo.documents == {}


def test_a_message_found_in_another_agencys_outbox_is_refused_and_only_its_publisher_told() -> None:
    repo = hub()
    forged = inbound(A, document(A, [B]), user_id=C)  # C published into A's outbox

    [h] = run(repo, forged)

    assert h.outcome == "rejected" and copies(h) == []
    assert [r["_to"] for r in receipts(h)] == [C]
    assert repo.documents == {}
    assert repo.rejections[0]["user_id"] == C


def test_only_a_documents_own_sender_may_revoke_it() -> None:
    repo = hub()
    original = document(A, [B])
    run(repo, inbound(A, original))
    revoke = document(
        C,
        [B],
        document_id=original.document_id,
        business={"document_id": original.document_id, "bussiness_doc_type": 1},
    )

    [h] = run(repo, inbound(C, revoke))

    assert h.outcome == "rejected" and copies(h) == []
    assert "only its sender" in receipts(h)[0]["reason"]
    assert len(repo.documents) == 1
    assert ev.REVOKED not in {e["kind"] for e in repo.events}


def test_a_revoke_by_the_sender_is_delivered_and_marks_the_earlier_delivery() -> None:
    repo = hub()
    original = document(A, [B])
    run(repo, inbound(A, original))
    revoke = document(
        A,
        [B],
        document_id=original.document_id,
        business={"document_id": original.document_id, "bussiness_doc_type": 1},
    )

    [h] = run(repo, inbound(A, revoke))

    assert h.outcome == "accepted" and copies(h) == [(B, t.TYPE_DOCUMENT)]
    [event] = [e for e in repo.events if e["kind"] == ev.REVOKED]
    assert event["delivery_id"] == min(repo.deliveries)


def test_one_refused_message_does_not_stop_its_neighbours() -> None:
    repo = hub()
    good, bad = run(repo, inbound(A, document(A, [B])), inbound(C, document(A, [B])))
    assert (good.outcome, bad.outcome) == ("accepted", "rejected")


# -- statuses -----------------------------------------------------------------------------


def _delivered(repo: FakeBatchRepository, recipients: list[str]) -> Document:
    doc = document(A, recipients)
    run(repo, inbound(A, doc))
    repo.confirm(list(repo.deliveries))
    return doc


def test_a_status_is_forwarded_to_the_sender_and_moves_the_delivery_forward() -> None:
    repo = hub()
    doc = _delivered(repo, [B])

    [h] = run(repo, inbound(B, status(B, A, doc.document_id, "03")))

    assert h.outcome == "accepted"
    assert copies(h) == [(A, t.TYPE_STATUS)]
    assert repo.delivery_of(doc.document_id, B)["state"] == states.ACCEPTED


def test_a_late_status_never_moves_a_delivery_backwards_but_is_recorded() -> None:
    repo = hub()
    doc = _delivered(repo, [B])
    run(repo, inbound(B, status(B, A, doc.document_id, "03")))

    [h] = run(repo, inbound(B, status(B, A, doc.document_id, "01")))

    assert h.outcome == "accepted"  # still forwarded: the sender sees everything
    assert repo.delivery_of(doc.document_id, B)["state"] == states.ACCEPTED
    late = [e for e in repo.events if e["kind"] == ev.STATUS][-1]
    assert late["detail"]["moved"] is False and late["status_code"] == "01"


def test_a_co_recipient_moves_its_own_delivery_never_another_recipients() -> None:
    repo = hub()
    doc = _delivered(repo, [B, C])

    [h] = run(repo, inbound(C, status(C, A, doc.document_id, "03")))

    assert h.outcome == "accepted"
    assert repo.delivery_of(doc.document_id, C)["state"] == states.ACCEPTED
    assert repo.delivery_of(doc.document_id, B)["state"] == states.QUEUED


def test_a_status_from_an_agency_the_document_was_not_sent_to_is_refused() -> None:
    repo = hub()
    doc = _delivered(repo, [B])

    [h] = run(repo, inbound(C, status(C, A, doc.document_id, "03")))

    assert h.outcome == "rejected" and copies(h) == []
    assert repo.delivery_of(doc.document_id, B)["state"] == states.QUEUED


def test_a_status_about_an_unknown_document_is_refused() -> None:
    repo = hub()
    [h] = run(repo, inbound(B, status(B, A, "000.00.00.H41,2026/11/30,none/VP", "01")))
    assert h.outcome == "rejected"
    assert "no document" in receipts(h)[0]["reason"]


def test_a_status_seen_again_is_forwarded_again_but_recorded_once() -> None:
    repo = hub()
    doc = _delivered(repo, [B])
    message = inbound(B, status(B, A, doc.document_id, "03"))
    [h1] = run(repo, message)

    [h2] = run(repo, message)

    assert h2.outcome == "duplicate"
    assert copies(h2) == [(A, t.TYPE_STATUS)]
    assert receipts(h2) == receipts(h1)
    assert len([e for e in repo.events if e["kind"] == ev.STATUS]) == 1


def test_a_take_back_refused_returns_the_delivery_to_where_it_was() -> None:
    repo = hub()
    doc = _delivered(repo, [B])
    run(repo, inbound(B, status(B, A, doc.document_id, "05")))
    run(repo, inbound(A, status(A, B, doc.document_id, "13")))
    assert repo.delivery_of(doc.document_id, B)["state"] == states.RECALL_REQUESTED

    run(repo, inbound(B, status(B, A, doc.document_id, "16")))

    assert repo.delivery_of(doc.document_id, B)["state"] == states.PROCESSING


def test_every_receipt_is_published_under_its_own_receipt_id() -> None:
    # The relay sends a batch's receipts to one agency together (lienthong.receipts/1) and the
    # adapter records each under its receipt_id: that must be the id it has when it comes
    # alone, or a receipt sent once alone and once grouped would be recorded twice.
    repo = hub()
    doc = _delivered(repo, [B])
    repeated = inbound(A, document(A, [B, C]))
    batch = [
        inbound(A, document(A, [B, "000.99.99.Z99"])),  # accepted
        repeated,
        Inbound(tag=1, queue=repeated.queue, envelope=repeated.envelope, properties=dict),
        inbound(C, document(A, [B])),  # refused: C sends as A
        inbound(B, status(B, A, doc.document_id, "03")),  # a status's receipt
    ]
    handled = run(repo, *batch)
    [again] = run(repo, repeated)  # a stored receipt, sent again

    found = [r for h in [*handled, again] for r in receipts(h)]
    assert {r["kind"] for r in found} == {"accepted", "rejected"}
    assert len(found) == 6
    assert [r["_id"] for r in found] == [r["receipt_id"] for r in found]
