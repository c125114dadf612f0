"""Bad input is kept with its reason and answered with a `rejected` receipt; the relay lives on."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import Engine, select

from relay.config import Settings
from relay.db.tables import receipts, rejections
from schemas import topology as t
from tests.relay_support import (
    Agency,
    RelayProcess,
    add_agency,
    admin_user,
    drain,
    make_document,
    publish,
    publish_as_admin,
    wait_until,
)
from tests.services import random_code

pytestmark = pytest.mark.integration


#: Settings this module's relay runs with, besides quick polling (see conftest.py).
RELAY_SETTINGS = {"max_message_bytes": 64 * 1024}


@pytest.fixture()
def pair(relay_env: Settings, db: Engine, relay: RelayProcess) -> tuple[Agency, Agency]:
    a = add_agency(relay_env, db, random_code())
    b = add_agency(relay_env, db, random_code())
    relay.wait_consuming([a.code, b.code])
    return a, b


def _stored_rejections(db: Engine, message_id: str) -> list[dict[str, object]]:
    with db.connect() as conn:
        rows = conn.execute(select(rejections).where(rejections.c.message_id == message_id))
        return [dict(r) for r in rows.mappings()]


def _stored_rejection(db: Engine, message_id: str) -> dict[str, object]:
    with db.connect() as conn:
        rows = (
            conn.execute(select(rejections).where(rejections.c.message_id == message_id))
            .mappings()
            .all()
        )
    assert len(rows) == 1, rows
    return dict(rows[0])


def _rejected_receipt(agency: Agency, message_id: str) -> dict[str, object]:
    got = drain(agency, expect=1)
    assert len(got) == 1 and got[0].type == "receipt"
    receipt: dict[str, object] = json.loads(got[0].body)
    assert receipt["kind"] == "rejected" and receipt["in_reply_to"] == message_id
    return receipt


def _still_routes(a: Agency, b: Agency) -> None:
    publish(a, make_document(a.code, [b.code]))
    assert len(drain(b, expect=1)) == 1
    assert json.loads(drain(a, expect=1)[0].body)["kind"] == "accepted"


def test_a_message_without_user_id_is_stored_and_rejected_with_a_receipt(
    db: Engine, relay: RelayProcess, pair: tuple[Agency, Agency]
) -> None:
    a, b = pair
    mid = publish(a, make_document(a.code, [b.code]), user_id=None)

    receipt = _rejected_receipt(a, mid)
    assert "user_id" in str(receipt["reason"]) and "missing" in str(receipt["reason"])
    row = _stored_rejection(db, mid)
    assert row["queue"] == t.outbox_queue(a.code) and row["user_id"] is None
    assert drain(b, timeout=1) == []
    _still_routes(a, b)


def test_a_message_whose_user_id_is_not_the_queue_owner_is_rejected(
    relay_env: Settings, db: Engine, relay: RelayProcess, pair: tuple[Agency, Agency]
) -> None:
    a, b = pair
    # An agency cannot forge user_id (the broker refuses it); another broker user can publish
    # into A's outbox with its own name, which the relay must not take for A.
    body = make_document(a.code, [b.code]).model_dump_json(by_alias=True).encode()
    forger = admin_user(relay_env)
    mid = publish_as_admin(relay_env, t.submit_routing_key(a.code), body, user_id=forger)

    # Kept with the reason; A is not answered about a message it did not send, and the forger
    # is no agency to tell (issue 12 item 2).
    row = wait_until(lambda: _stored_rejections(db, mid), timeout=20)[0]
    assert row["user_id"] == forger and repr(forger) in str(row["reason"])
    assert drain(a, timeout=1) == []
    assert drain(b, timeout=1) == []
    _still_routes(a, b)


def test_invalid_json_is_stored_raw_and_rejected_naming_the_problem(
    db: Engine, relay: RelayProcess, pair: tuple[Agency, Agency]
) -> None:
    a, b = pair
    mid = publish(a, b"{this is not json", message_type="document")

    receipt = _rejected_receipt(a, mid)
    assert "not valid JSON" in str(receipt["reason"])
    row = _stored_rejection(db, mid)
    assert row["body"] == b"{this is not json"
    _still_routes(a, b)


def test_a_schema_failure_names_the_field_and_the_value(
    db: Engine, relay: RelayProcess, pair: tuple[Agency, Agency]
) -> None:
    a, b = pair
    doc = json.loads(make_document(a.code, [b.code]).model_dump_json(by_alias=True))
    doc["recipients"][0]["organ_id"] = "not a code"
    mid = publish(a, json.dumps(doc).encode(), message_type="document")

    receipt = _rejected_receipt(a, mid)
    assert "recipients.0.organ_id" in str(receipt["reason"])
    assert "not a code" in str(receipt["reason"])
    assert _stored_rejection(db, mid)["reason"] == receipt["reason"]
    with db.connect() as conn:
        kinds = conn.execute(select(receipts.c.kind).where(receipts.c.in_reply_to == mid)).all()
    assert [k for (k,) in kinds] == ["rejected"]
    _still_routes(a, b)


def test_a_sender_that_is_neither_the_agency_nor_a_unit_it_hosts_is_rejected(
    db: Engine, relay: RelayProcess, pair: tuple[Agency, Agency]
) -> None:
    a, b = pair
    mid = publish(a, make_document(b.code, [a.code]))

    receipt = _rejected_receipt(a, mid)
    assert "sender.organ_id" in str(receipt["reason"]) and b.code in str(receipt["reason"])
    assert drain(a, timeout=1) == []
    _still_routes(a, b)


def test_an_oversized_message_is_rejected_with_the_limit_in_the_reason(
    db: Engine, relay: RelayProcess, pair: tuple[Agency, Agency]
) -> None:
    a, b = pair
    mid = publish(a, make_document(a.code, [b.code], size=100 * 1024))

    receipt = _rejected_receipt(a, mid)
    assert "limit" in str(receipt["reason"])
    _stored_rejection(db, mid)
    _still_routes(a, b)
