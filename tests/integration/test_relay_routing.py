"""The relay routes documents and statuses between agencies (issue 3), against real services."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import Engine, select

from relay.config import Settings
from relay.db.tables import deliveries, documents, events, receipts
from tests.relay_support import (
    Agency,
    RelayProcess,
    add_agency,
    drain,
    make_document,
    make_status,
    publish,
    set_agency_state,
    wait_until,
)
from tests.services import random_code

pytestmark = pytest.mark.integration


def _connected(relay_env: Settings, db: Engine, relay: RelayProcess, n: int) -> list[Agency]:
    out = [add_agency(relay_env, db, random_code()) for _ in range(n)]
    relay.wait_consuming(a.code for a in out)
    return out


def _delivery_states(db: Engine, message_id: str) -> dict[str, str]:
    with db.connect() as conn:
        rows = conn.execute(
            select(deliveries.c.recipient, deliveries.c.state)
            .join(documents, documents.c.id == deliveries.c.document_pk)
            .where(documents.c.message_id == message_id)
        ).all()
    return {r: s for r, s in rows}


def test_a_document_reaches_each_recipient_once_and_the_sender_gets_an_accepted_receipt(
    relay_env: Settings, db: Engine, relay: RelayProcess
) -> None:
    a, b, c = _connected(relay_env, db, relay, 3)
    unit = add_agency(relay_env, db, random_code(), host=c.code)
    doc = make_document(a.code, [b.code, c.code, unit.code])

    mid = publish(a, doc)

    at_b = drain(b, expect=1, timeout=10)
    at_c = drain(c, expect=2, timeout=10)
    assert len(at_b) == 1 and at_b[0].type == "document"
    assert json.loads(at_b[0].body)["document_id"] == doc.document_id
    assert sorted(m.headers["x-lienthong-recipient"] for m in at_c) == sorted([c.code, unit.code])
    assert drain(b, timeout=1) == [] and drain(c, timeout=1) == []  # nothing more
    receipt = json.loads(drain(a, expect=1)[0].body)
    assert receipt["kind"] == "accepted" and receipt["in_reply_to"] == mid
    assert {r["code"]: (r["outcome"], r["route_to"]) for r in receipt["recipients"]} == {
        b.code: ("queued", b.code),
        c.code: ("queued", c.code),
        unit.code: ("queued", c.code),
    }
    states = wait_until(
        lambda: (s := _delivery_states(db, mid)) and set(s.values()) == {"queued"} and s
    )
    assert sorted(states) == sorted([b.code, c.code, unit.code])
    with db.connect() as conn:
        stored = conn.execute(select(receipts.c.kind).where(receipts.c.in_reply_to == mid)).all()
    assert [k for (k,) in stored] == ["accepted"]


def test_an_unknown_or_suspended_recipient_is_reported_and_the_rest_proceed(
    relay_env: Settings, db: Engine, relay: RelayProcess
) -> None:
    a, b = _connected(relay_env, db, relay, 2)
    gone = add_agency(relay_env, db, random_code(), state="suspended")
    stranger = random_code()

    mid = publish(a, make_document(a.code, [b.code, gone.code, stranger]))

    assert len(drain(b, expect=1)) == 1
    receipt = json.loads(drain(a, expect=1)[0].body)
    outcomes = {r["code"]: r["outcome"] for r in receipt["recipients"]}
    assert outcomes == {b.code: "queued", gone.code: "suspended", stranger: "unknown_recipient"}
    assert list(_delivery_states(db, mid)) == [b.code]


def test_statuses_reach_the_sender_in_order_and_a_late_one_does_not_move_the_delivery_back(
    relay_env: Settings, db: Engine, relay: RelayProcess
) -> None:
    a, b = _connected(relay_env, db, relay, 2)
    doc = make_document(a.code, [b.code])
    mid = publish(a, doc)
    drain(b, expect=1)
    drain(a, expect=1)  # the accepted receipt

    codes = ["01", "03", "04", "05", "06", "03"]
    for code in codes:
        publish(b, make_status(b.code, a.code, doc.document_id, code))

    at_a = drain(a, expect=len(codes))
    assert [json.loads(m.body)["status_code"] for m in at_a] == codes
    assert all(m.type == "status" for m in at_a)
    receipts_at_b = drain(b, expect=len(codes))
    assert [json.loads(m.body)["kind"] for m in receipts_at_b] == ["accepted"] * len(codes)
    assert _delivery_states(db, mid) == {b.code: "completed"}
    with db.connect() as conn:
        recorded = conn.execute(
            select(events.c.status_code, events.c.staff)
            .join(documents, documents.c.id == events.c.document_pk)
            .where(documents.c.message_id == mid, events.c.kind == "status")
            .order_by(events.c.id)
        ).all()
    assert [code for code, _ in recorded] == codes
    assert {staff for _, staff in recorded} == {"Nguyễn Văn A"}


def test_a_status_from_an_agency_that_was_not_a_recipient_is_rejected_with_a_receipt(
    relay_env: Settings, db: Engine, relay: RelayProcess
) -> None:
    a, b, outsider = _connected(relay_env, db, relay, 3)
    doc = make_document(a.code, [b.code])
    mid = publish(a, doc)
    drain(b, expect=1)
    drain(a, expect=1)

    sid = publish(outsider, make_status(outsider.code, a.code, doc.document_id, "03"))

    receipt = json.loads(drain(outsider, expect=1)[0].body)
    assert receipt["kind"] == "rejected" and receipt["in_reply_to"] == sid
    assert "not a recipient" in receipt["reason"] and outsider.code in receipt["reason"]
    assert drain(a, timeout=1) == []  # nothing forwarded
    assert _delivery_states(db, mid) == {b.code: "queued"}


def test_the_same_submission_twice_is_one_document_one_delivery_and_one_copy(
    relay_env: Settings, db: Engine, relay: RelayProcess
) -> None:
    a, b = _connected(relay_env, db, relay, 2)
    doc = make_document(a.code, [b.code])
    mid = publish(a, doc)
    publish(a, doc, message_id=mid)

    copies = drain(b, quiet=3)  # all that comes within 3 s of the last
    # One copy. When the duplicate arrives before the first copy's confirm has been recorded,
    # the delivery is still `pending` and is published again (DESIGN §2: a pending delivery is
    # republished, so a crash between commit and publish loses nothing) under the same message
    # id, which the adapter recognises: under load B's inbox can hold it twice, never two
    # different copies.
    assert 1 <= len(copies) <= 2
    assert len({m.message_id for m in copies}) == 1
    receipts_at_a = drain(a, expect=2)
    assert len(receipts_at_a) == 2  # the original receipt, sent again
    first, again = (json.loads(m.body) for m in receipts_at_a)
    assert first == again and first["in_reply_to"] == mid
    with db.connect() as conn:
        n_docs = conn.execute(select(documents.c.id).where(documents.c.message_id == mid)).all()
    assert len(n_docs) == 1
    assert _delivery_states(db, mid) == {b.code: "queued"}


def test_a_suspended_agencys_outbox_is_left_alone_until_it_is_resumed(
    relay_env: Settings, db: Engine, relay: RelayProcess
) -> None:
    a, b = _connected(relay_env, db, relay, 2)
    set_agency_state(db, a.code, "suspended")
    relay.wait_for_log(f'"agency": "{a.code}", "event": "relay.outbox_released"')

    mid = publish(a, make_document(a.code, [b.code]))
    assert drain(b, timeout=1.5) == []
    assert _delivery_states(db, mid) == {}

    set_agency_state(db, a.code, "active")
    assert len(drain(b, expect=1)) == 1
    assert json.loads(drain(a, expect=1)[0].body)["in_reply_to"] == mid
