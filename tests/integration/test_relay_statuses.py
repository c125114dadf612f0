"""Statuses through hosted units, take-back (13 → 15/16) and revoke timelines (DESIGN §2)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import Engine, select

from relay.config import Settings
from relay.db.tables import deliveries, documents, events
from tests.relay_support import (
    Agency,
    Received,
    RelayProcess,
    add_agency,
    drain,
    make_document,
    make_status,
    publish,
)
from tests.services import random_code

pytestmark = pytest.mark.integration


def _pair(relay_env: Settings, db: Engine, relay: RelayProcess) -> tuple[Agency, Agency]:
    a = add_agency(relay_env, db, random_code())
    c = add_agency(relay_env, db, random_code())
    relay.wait_consuming([a.code, c.code])
    return a, c


def _state(db: Engine, message_id: str, recipient: str) -> str:
    with db.connect() as conn:
        return str(
            conn.execute(
                select(deliveries.c.state)
                .join(documents, documents.c.id == deliveries.c.document_pk)
                .where(documents.c.message_id == message_id, deliveries.c.recipient == recipient)
            ).scalar_one()
        )


def _codes(received: list[Received]) -> list[str]:
    return [json.loads(m.body)["status_code"] for m in received]


def test_a_hosted_unit_reports_through_its_host_to_a_hosted_sender(
    relay_env: Settings, db: Engine, relay: RelayProcess
) -> None:
    a, c = _pair(relay_env, db, relay)
    a_unit = add_agency(relay_env, db, random_code(), host=a.code)
    c_unit = add_agency(relay_env, db, random_code(), host=c.code)
    doc = make_document(a_unit.code, [c_unit.code])
    mid = publish(a, doc)  # A's adapter sends for the unit it hosts
    copy = drain(c, expect=1)[0]
    assert copy.headers["x-lienthong-recipient"] == c_unit.code
    drain(a, expect=1)

    publish(c, make_status(c_unit.code, a_unit.code, doc.document_id, "01"))

    forwarded = drain(a, expect=1)
    assert _codes(forwarded) == ["01"]
    assert forwarded[0].headers["x-lienthong-recipient"] == a_unit.code
    assert json.loads(drain(c, expect=1)[0].body)["kind"] == "accepted"
    assert _state(db, mid, c_unit.code) == "delivered"


def test_a_take_back_agreed_with_15_ends_recalled_and_both_sides_hear_it(
    relay_env: Settings, db: Engine, relay: RelayProcess
) -> None:
    a, c = _pair(relay_env, db, relay)
    doc = make_document(a.code, [c.code])
    mid = publish(a, doc)
    drain(c, expect=1)
    drain(a, expect=1)
    publish(c, make_status(c.code, a.code, doc.document_id, "01"))
    drain(a, expect=1)
    drain(c, expect=1)

    publish(a, make_status(a.code, c.code, doc.document_id, "13"))
    assert _codes(drain(c, expect=1)) == ["13"]
    assert json.loads(drain(a, expect=1)[0].body)["kind"] == "accepted"
    assert _state(db, mid, c.code) == "recall_requested"

    publish(c, make_status(c.code, a.code, doc.document_id, "15"))
    assert _codes(drain(a, expect=1)) == ["15"]
    drain(c, expect=1)
    assert _state(db, mid, c.code) == "recalled"


def test_a_take_back_refused_with_16_returns_to_the_state_before_the_request(
    relay_env: Settings, db: Engine, relay: RelayProcess
) -> None:
    a, c = _pair(relay_env, db, relay)
    doc = make_document(a.code, [c.code])
    mid = publish(a, doc)
    drain(c, expect=1)
    for code in ("01", "03", "04"):
        publish(c, make_status(c.code, a.code, doc.document_id, code))
    publish(a, make_status(a.code, c.code, doc.document_id, "13"))
    assert len(drain(c, expect=4)) == 4  # the copy's receipts (3) and the 13
    assert len(drain(a, expect=5)) == 5  # accepted, 01, 03, 04, the 13's receipt
    assert _state(db, mid, c.code) == "recall_requested"

    publish(c, make_status(c.code, a.code, doc.document_id, "16"))

    assert _codes(drain(a, expect=1)) == ["16"]
    assert _state(db, mid, c.code) == "assigned"


def test_only_the_sender_may_ask_to_take_a_document_back(
    relay_env: Settings, db: Engine, relay: RelayProcess
) -> None:
    a, c = _pair(relay_env, db, relay)
    doc = make_document(a.code, [c.code])
    mid = publish(a, doc)
    drain(c, expect=1)
    drain(a, expect=1)

    sid = publish(c, make_status(c.code, c.code, doc.document_id, "13"))

    receipt = json.loads(drain(c, expect=1)[0].body)
    assert receipt["kind"] == "rejected" and receipt["in_reply_to"] == sid
    assert _state(db, mid, c.code) == "queued"


def test_a_status_about_an_unknown_document_is_rejected(
    relay_env: Settings, db: Engine, relay: RelayProcess
) -> None:
    a, c = _pair(relay_env, db, relay)
    sid = publish(c, make_status(c.code, a.code, "no-such-document", "01"))
    receipt = json.loads(drain(c, expect=1)[0].body)
    assert receipt["kind"] == "rejected" and receipt["in_reply_to"] == sid
    assert "no-such-document" in receipt["reason"]


def test_the_same_status_twice_is_recorded_once_and_forwarded_with_one_message_id(
    relay_env: Settings, db: Engine, relay: RelayProcess
) -> None:
    a, c = _pair(relay_env, db, relay)
    doc = make_document(a.code, [c.code])
    publish(a, doc)
    drain(c, expect=1)
    drain(a, expect=1)
    status = make_status(c.code, a.code, doc.document_id, "03")
    sid = publish(c, status)
    publish(c, status, message_id=sid)

    forwarded = drain(a, expect=2, timeout=3)
    assert {m.message_id for m in forwarded} == {forwarded[0].message_id}
    receipts_at_c = drain(c, expect=2)
    assert [json.loads(m.body)["kind"] for m in receipts_at_c] == ["accepted", "accepted"]
    with db.connect() as conn:
        recorded = conn.execute(select(events.c.id).where(events.c.message_id == sid)).all()
    assert len(recorded) == 1


def test_a_revoke_is_routed_and_marks_the_earlier_deliveries_in_the_timeline(
    relay_env: Settings, db: Engine, relay: RelayProcess
) -> None:
    a, c = _pair(relay_env, db, relay)
    doc = make_document(a.code, [c.code])
    original = publish(a, doc)
    drain(c, expect=1)
    drain(a, expect=1)
    revoke = make_document(
        a.code,
        [c.code],
        document_id=doc.document_id,
        business={"document_id": doc.document_id, "bussiness_doc_type": 1},
    )

    publish(a, revoke)

    copy = drain(c, expect=1)
    assert json.loads(copy[0].body)["business"]["bussiness_doc_type"] == 1
    assert json.loads(drain(a, expect=1)[0].body)["kind"] == "accepted"
    with db.connect() as conn:
        kinds = conn.execute(
            select(events.c.kind)
            .join(deliveries, deliveries.c.id == events.c.delivery_id)
            .join(documents, documents.c.id == deliveries.c.document_pk)
            .where(documents.c.message_id == original)
        ).all()
    assert "revoked" in {k for (k,) in kinds}


def test_a_second_13_then_16_returns_to_processing_not_delivered(
    relay_env: Settings, db: Engine, relay: RelayProcess
) -> None:
    # Issue 12 item 3: 05, 13, 13 from the sender, then 16 left the delivery `delivered`.
    a, c = _pair(relay_env, db, relay)
    doc = make_document(a.code, [c.code])
    mid = publish(a, doc)
    drain(c, expect=1)
    drain(a, expect=1)
    publish(c, make_status(c.code, a.code, doc.document_id, "05"))
    publish(a, make_status(a.code, c.code, doc.document_id, "13"))
    publish(a, make_status(a.code, c.code, doc.document_id, "13"))
    drain(c, expect=3)  # the 05's receipt and the two 13s
    drain(a, expect=3)
    assert _state(db, mid, c.code) == "recall_requested"

    publish(c, make_status(c.code, a.code, doc.document_id, "06"))
    publish(c, make_status(c.code, a.code, doc.document_id, "16"))

    assert _codes(drain(a, expect=2)) == ["06", "16"]
    assert _state(db, mid, c.code) == "completed"
