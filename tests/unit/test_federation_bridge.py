"""The federation link's rules (relay/federation/bridge.py) and routing's upstream outcome."""

from __future__ import annotations

from typing import Any

from relay.domain.routing import Entry, resolve_recipient, sender_refusal
from relay.federation import bridge
from relay.federation.store import Links
from schemas import Receipt, ReceiptKind, RecipientOutcome, RecipientResult, Status
from schemas import topology as t
from schemas.envelope import decode_message, encode_message
from schemas.receipt import join_receipts

LINK = "000.00.00.H26"
DEPT = "000.01.00.H26"
MINISTRY = "000.00.00.G22"
DIRECTORY = {
    DEPT: Entry(DEPT, None, "active"),
    LINK: Entry(LINK, None, "active"),
}
LINKS = Links(codes=frozenset({LINK}), upstream=LINK)


def _copy(mid: str, recipient: str) -> bridge.Incoming:
    headers = {
        t.HEADER_SENDER: DEPT,
        t.HEADER_SUBMISSION_ID: "sub-1",
        t.HEADER_RECIPIENT: recipient,
    }
    return bridge.Incoming(mid, t.TYPE_DOCUMENT, headers, b"{}")


def never(_receipt: Receipt) -> bridge.Forwarded | None:
    raise AssertionError("not asked for a document copy")


def test_a_code_this_hub_does_not_serve_goes_upstream_for_its_own_agencies_only() -> None:
    up = resolve_recipient(MINISTRY, DIRECTORY, upstream=LINKS.upstream_for(DEPT))
    assert (up.outcome, up.route_to) == (RecipientOutcome.QUEUED, LINK)
    assert up.reason is not None and up.reason.startswith("upstream:")
    # What came in through the link is never sent back up: a loop is impossible.
    back = resolve_recipient(MINISTRY, DIRECTORY, upstream=LINKS.upstream_for(LINK))
    assert back.outcome is RecipientOutcome.UNKNOWN


def test_a_link_brings_in_only_codes_outside_this_hubs_directory() -> None:
    assert sender_refusal(LINK, MINISTRY, DIRECTORY, links=LINKS.codes) is None
    refusal = sender_refusal(LINK, DEPT, DIRECTORY, links=LINKS.codes)
    assert refusal is not None and "agency of this hub" in refusal
    # An ordinary agency still may not send as an outside code.
    assert sender_refusal(DEPT, MINISTRY, DIRECTORY, links=LINKS.codes) is not None


def test_the_copies_of_one_submission_go_up_as_one_submission_with_a_stable_id() -> None:
    first = bridge.handle(bridge.UP, _copy("copy-a", MINISTRY), never)
    second = bridge.handle(bridge.UP, _copy("copy-b", "000.00.00.G01"), never)
    again = bridge.handle(bridge.UP, _copy("copy-a", MINISTRY), never)
    assert isinstance(first, list) and isinstance(second, list) and isinstance(again, list)
    assert first[0].message_id == second[0].message_id == again[0].message_id
    down = bridge.handle(bridge.DOWN, _copy("copy-a", MINISTRY), never)
    assert isinstance(down, list) and down[0].message_id != first[0].message_id


def _receipt(kind: ReceiptKind, **fields: Any) -> bridge.Incoming:
    receipt = Receipt(
        kind=kind,
        in_reply_to="up-1",
        message_type="document",
        document_id="D1",
        sender=fields.pop("sender", DEPT),
        **fields,
    )
    return bridge.Incoming(
        "r-1", t.TYPE_RECEIPT, {}, receipt.model_dump_json(by_alias=True).encode()
    )


def _forwarded(_receipt: Receipt) -> bridge.Forwarded | None:
    return bridge.Forwarded(sender=DEPT, recipients=[MINISTRY, "000.99.00.G99"])


def test_recipients_the_other_hub_refuses_come_back_as_02_from_each_with_its_reason() -> None:
    message = _receipt(
        ReceiptKind.ACCEPTED,
        recipients=[
            RecipientResult(code=MINISTRY, outcome=RecipientOutcome.QUEUED, route_to=MINISTRY),
            RecipientResult(
                code="000.99.00.G99", outcome=RecipientOutcome.UNKNOWN, reason="không có"
            ),
            # not one this hub sent up: not answered for
            RecipientResult(code=DEPT, outcome=RecipientOutcome.UNKNOWN, reason="x"),
        ],
    )
    result = bridge.handle(bridge.DOWN, message, _forwarded)
    assert isinstance(result, list) and len(result) == 1
    status = decode_message(result[0].body)
    assert isinstance(status, Status)
    assert (status.status_code, status.sender.organ_id) == ("02", "000.99.00.G99")
    assert (status.response_for.organ_id, status.document_id) == (DEPT, "D1")
    assert status.description is not None and "không có" in status.description


def test_a_submission_the_other_hub_rejects_is_refused_for_every_recipient_sent_up() -> None:
    message = _receipt(ReceiptKind.REJECTED, sender=LINK, reason="sender.organ_id: not hosted")
    result = bridge.handle(bridge.DOWN, message, _forwarded)
    assert isinstance(result, list)
    codes = [decode_message(f.body).sender.organ_id for f in result]  # type: ignore[union-attr]
    assert codes == [MINISTRY, "000.99.00.G99"]
    # The refusal of one recipient has one id, whenever the receipt comes again.
    again = bridge.handle(bridge.DOWN, message, _forwarded)
    assert isinstance(again, list)
    assert [f.message_id for f in again] == [f.message_id for f in result]


def test_receipts_about_what_the_link_did_not_send_up_are_only_logged() -> None:
    message = _receipt(ReceiptKind.REJECTED, reason="whatever")
    result = bridge.handle(bridge.UP, message, lambda _r: None)
    assert isinstance(result, bridge.Dropped)
    snapshot = bridge.Incoming("d-1", "directory", {}, b"...")
    assert isinstance(bridge.handle(bridge.UP, snapshot, never), bridge.Dropped)


def test_receipts_that_come_together_are_each_answered_as_if_alone() -> None:
    unknown = RecipientResult(code="000.99.00.G99", outcome=RecipientOutcome.UNKNOWN, reason="x")
    taken = RecipientResult(code=MINISTRY, outcome=RecipientOutcome.QUEUED, route_to=MINISTRY)
    receipts = [
        Receipt(
            kind=ReceiptKind.ACCEPTED,
            in_reply_to=f"up-{n}",
            message_type="document",
            document_id=f"D{n}",
            sender=DEPT,
            recipients=results,
        )
        for n, results in enumerate([[taken, unknown], [taken], [unknown]])
    ]
    grouped = join_receipts([encode_message(r) for r in receipts])
    result = bridge.handle(
        bridge.DOWN, bridge.Incoming("g-1", t.TYPE_RECEIPTS, {}, grouped), _forwarded
    )
    assert isinstance(result, list)
    alone = [
        bridge.handle(
            bridge.DOWN,
            bridge.Incoming(f"r-{n}", t.TYPE_RECEIPT, {}, encode_message(r)),
            _forwarded,
        )
        for n, r in enumerate(receipts)
    ]
    assert result == [f for a in alone if isinstance(a, list) for f in a]
    assert [decode_message(f.body).document_id for f in result] == ["D0", "D2"]  # type: ignore[union-attr]
    nothing = join_receipts([encode_message(receipts[1])] * 2)
    dropped = bridge.handle(
        bridge.DOWN, bridge.Incoming("g-2", t.TYPE_RECEIPTS, {}, nothing), _forwarded
    )
    assert isinstance(dropped, bridge.Dropped)
    bad = bridge.handle(bridge.DOWN, bridge.Incoming("g-3", t.TYPE_RECEIPTS, {}, b"{}"), _forwarded)
    assert isinstance(bad, bridge.Dropped) and bad.event == "federation.bad_receipt"
