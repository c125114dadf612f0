"""A batch's receipts to one agency go as one ``lienthong.receipts/1`` message."""

from __future__ import annotations

import json

import pytest

from relay.domain import receipt_groups as shared_groups
from relay.domain.outgoing import Outgoing, delivery, receipt_message_id, receipts_together
from relay.worker import receipt_groups
from relay.worker.process import Publish
from schemas import Receipt, ReceiptKind, Receipts, encode_message, join_receipts, split_receipts
from schemas import topology as t
from schemas.envelope import InvalidMessage

A = "000.00.00.H41"
B = "000.00.00.G22"
C = "000.00.00.G23"


def receipt(owner: str, submission: str, **fields: object) -> Publish:
    rid = receipt_message_id(submission, ReceiptKind.ACCEPTED.value, by=owner)
    body = Receipt(receipt_id=rid, kind=ReceiptKind.ACCEPTED, in_reply_to=submission, sender=owner)
    return Publish(
        Outgoing(
            route_to=owner,
            message_id=rid,
            message_type=t.TYPE_RECEIPT,
            body=encode_message(body),
            correlation_id=submission,
            **fields,  # type: ignore[arg-type]
        )
    )


def copy(sender: str, submission: str, recipient: str, delivery_id: int) -> Publish:
    out = delivery(
        submission_id=submission,
        sender=sender,
        recipient=recipient,
        route_to=recipient,
        message_type=t.TYPE_DOCUMENT,
        body=b"{}",
    )
    return Publish(out, delivery_id=delivery_id)


def test_receipts_to_one_agency_become_one_message_that_holds_each_as_it_was() -> None:
    a1, a2, a3, c1 = receipt(A, "s1"), receipt(A, "s2"), receipt(A, "s3"), receipt(C, "s4")
    k1, k2 = copy(A, "s1", B, 1), copy(A, "s2", B, 2)
    items = [(k1, 10), (a1, 1), (k2, 20), (a2, 2), (c1, 4), (a3, 3)]

    grouped = receipt_groups.group_receipts(items)

    # copies keep their order; the receipts follow, by agency, a lone one as it was
    assert [pub for pub, _ in grouped[:2]] == [k1, k2]
    assert grouped[3] == (c1, 4)
    together, counted = grouped[2]
    assert counted == 6  # what its receipts counted towards the bound on copies in flight
    out = together.outgoing
    assert together.delivery_id is None
    assert (out.route_to, out.message_type, out.urgent) == (A, t.TYPE_RECEIPTS, False)
    inner = split_receipts(out.body)
    assert [str(r.receipt_id) for r in inner] == [p.outgoing.message_id for p in (a1, a2, a3)]
    assert [encode_message(r) for r in inner] == [p.outgoing.body for p in (a1, a2, a3)]
    # done again (a batch redone after a crash), the same group is the same message
    again = receipt_groups.group_receipts(items)[2][0].outgoing
    assert again.message_id == out.message_id
    other = receipt_groups.group_receipts([(a1, 1), (a2, 2)])[0][0].outgoing
    assert other.message_id != out.message_id


def test_a_lone_receipt_an_urgent_one_and_copies_are_never_grouped() -> None:
    lone = receipt(A, "s1")
    urgent = [receipt(B, "u1", urgent=True), receipt(B, "u2", urgent=True)]
    copies = [copy(A, "s1", B, 1), copy(A, "s1", C, 2)]
    items = [(p, 0) for p in [*urgent, *copies, lone]]
    assert receipt_groups.group_receipts(items) == items


def test_a_group_is_cut_before_its_receipts_pass_the_byte_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pubs = [receipt(A, f"s{i}") for i in range(5)]
    size = len(pubs[0].outgoing.body)
    monkeypatch.setattr(shared_groups, "GROUP_MAX_BYTES", 2 * size)
    grouped = receipt_groups.group_receipts([(p, 0) for p in pubs])
    sizes = [len(split_receipts(p.outgoing.body)) for p, _ in grouped[:2]]
    assert sizes == [2, 2]
    assert grouped[2][0] is pubs[4]  # the last one alone goes as a plain receipt


def test_joined_bodies_are_what_the_model_would_encode() -> None:
    parts = [Receipt(kind=ReceiptKind.ACCEPTED, in_reply_to=f"m{i}", sender=A) for i in range(3)]
    joined = join_receipts([encode_message(r) for r in parts])
    assert joined == Receipts(receipts=parts).model_dump_json(by_alias=True).encode()
    assert json.loads(joined)["schema"] == "lienthong.receipts/1"


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"schema": "lienthong.receipts/1", "receipts": []}', "receipts"),
        (b'{"schema": "lienthong.receipts/1", "receipts": [{"kind": "nope"}]}', "receipts.0"),
        (b'{"schema": "lienthong.receipt/1", "receipts": []}', "schema"),
        (b"not json", "JSON"),
    ],
)
def test_a_bad_receipts_body_is_refused_with_a_reason(body: bytes, says: str) -> None:
    with pytest.raises(InvalidMessage, match=says):
        split_receipts(body)


def test_receipts_sent_outside_a_batch_are_grouped_by_agency_the_same_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a = [receipt(A, f"s{i}").outgoing for i in range(5)]
    c = receipt(C, "c1").outgoing
    status = copy(A, "s9", B, 9).outgoing
    monkeypatch.setattr(shared_groups, "GROUP_MAX_BYTES", 3 * len(a[0].body))

    found = shared_groups.messages([a[0], c, a[1], status, a[2], a[3], a[4]])

    assert [m.receipts for m in found] == [[status], [a[0], a[1], a[2]], [a[3], a[4]], [c]]
    assert [m.grouped for m in found] == [False, True, True, False]
    assert found[0].outgoing is status and found[3].outgoing is c
    inner = split_receipts(found[1].outgoing.body)
    assert [str(r.receipt_id) for r in inner] == [o.message_id for o in a[:3]]
    assert found[1].outgoing.message_id == receipts_together(A, a[:3]).message_id
