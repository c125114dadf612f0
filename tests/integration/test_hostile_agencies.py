"""Issue 12 items 2, 4 and 8 (relay side): one agency cannot answer for, silence or change the
documents of another."""

from __future__ import annotations

import json
import uuid

import pika
import pytest
from sqlalchemy import Engine, select

from relay.broker.management import ManagementClient
from relay.config import Settings
from relay.db.tables import deliveries, documents, events, receipts, rejections
from schemas import encode_message
from schemas import topology as t
from tests.relay_support import (
    Agency,
    RelayProcess,
    add_agency,
    agency_channel,
    drain,
    make_document,
    make_status,
    publish,
    wait_until,
)
from tests.services import random_code

pytestmark = pytest.mark.integration


def _agencies(relay_env: Settings, db: Engine, relay: RelayProcess, n: int) -> list[Agency]:
    found = [add_agency(relay_env, db, random_code()) for _ in range(n)]
    relay.wait_consuming([a.code for a in found])
    return found


def _state(db: Engine, submitted_by: str, message_id: str, recipient: str) -> str:
    with db.connect() as conn:
        return str(
            conn.execute(
                select(deliveries.c.state)
                .join(documents, documents.c.id == deliveries.c.document_pk)
                .where(
                    documents.c.submitted_by == submitted_by,
                    documents.c.message_id == message_id,
                    deliveries.c.recipient == recipient,
                )
            ).scalar_one()
        )


# -- item 2: a message found in another agency's outbox ------------------------------------


def _publish_into_both_outboxes(settings: Settings, a: Agency, b: Agency, message_id: str) -> bytes:
    """As A, a message that also lands in B's outbox. The broker no longer allows that to an
    agency (each publishes to its own fanout exchange, bound to its own outbox only: see
    test_agency_routes.py; before, a ``CC`` header did it on RabbitMQ < 4.0.3), so the test
    binds B's outbox to A's exchange itself, as a mistaken binding would: the relay must still
    never answer B about a message B did not send."""
    with ManagementClient(settings.management_url) as mgmt:
        mgmt.bind_queue(settings.vhost, t.submit_exchange(a.code), t.outbox_queue(b.code), "")
    body = encode_message(make_document(a.code, [a.code]))
    with agency_channel(a) as ch:
        ch.basic_publish(
            t.submit_exchange(a.code),
            "",
            body,
            properties=pika.BasicProperties(
                content_type=t.CONTENT_TYPE,
                delivery_mode=2,
                message_id=message_id,
                type=t.TYPE_DOCUMENT,
                user_id=a.code,
            ),
            mandatory=True,
        )
    return body


def test_a_message_copied_into_another_outbox_is_answered_to_its_publisher_only(
    relay_env: Settings, db: Engine, relay: RelayProcess
) -> None:
    a, b = _agencies(relay_env, db, relay, 2)
    # B's real submission; A reuses its id
    real = make_document(b.code, [a.code])
    mid = publish(b, real)
    assert json.loads(drain(b, expect=1)[0].body)["kind"] == "accepted"
    drain(a, expect=1)

    body = _publish_into_both_outboxes(relay_env, a, b, mid)

    def found_in_b_outbox() -> list[dict[str, object]]:
        with db.connect() as conn:
            rows = conn.execute(
                select(rejections).where(
                    rejections.c.message_id == mid,
                    rejections.c.queue == t.outbox_queue(b.code),
                )
            ).mappings()
            return [dict(r) for r in rows]

    [row] = wait_until(found_in_b_outbox, timeout=20)
    assert row["user_id"] == a.code and row["body"] == body
    # B hears nothing about a message it did not send ...
    assert drain(b, timeout=2) == []
    with db.connect() as conn:
        to_b = conn.execute(
            select(receipts.c.kind).where(
                receipts.c.agency == b.code, receipts.c.in_reply_to == mid
            )
        ).all()
    assert [k for (k,) in to_b] == ["accepted"]  # only B's own submission's receipt
    # ... A, who published it, is told why
    # (A's own copy of the document it addressed to itself, its accepted receipt, and ...)
    got = [json.loads(m.body) for m in drain(a, expect=3, timeout=20) if m.type == "receipt"]
    rejected = [r for r in got if r["kind"] == "rejected"]
    assert len(rejected) == 1, got
    assert t.outbox_queue(b.code) in rejected[0]["reason"]
    assert rejected[0]["in_reply_to"] == mid


# -- item 4: ids the hub creates vs ids an agency chooses -----------------------------------


def test_a_status_reusing_another_agencys_submission_id_cannot_shadow_its_copy(
    relay_env: Settings, db: Engine, relay: RelayProcess
) -> None:
    a, b, c = _agencies(relay_env, db, relay, 3)
    doc_a = make_document(a.code, [b.code, c.code])
    mid_a = publish(a, doc_a)
    copy_to_b = drain(b, expect=1)[0]
    copy_to_c = drain(c, expect=1)[0]
    assert copy_to_c.headers[t.HEADER_SUBMISSION_ID] == mid_a  # C can see A's id
    drain(a, expect=1)
    doc_b = make_document(b.code, [c.code])
    publish(b, doc_b)
    drain(c, expect=1)
    drain(b, expect=1)

    # C answers B's document with a status whose message_id is A's submission id
    publish(c, make_status(c.code, b.code, doc_b.document_id, "03"), message_id=mid_a)

    forwarded = drain(b, expect=1)
    assert forwarded and forwarded[0].type == "status"
    assert forwarded[0].message_id != copy_to_b.message_id


def test_an_agency_reusing_another_agencys_status_id_does_not_swallow_that_status(
    relay_env: Settings, db: Engine, relay: RelayProcess
) -> None:
    a, b, c = _agencies(relay_env, db, relay, 3)
    doc = make_document(a.code, [b.code, c.code])
    mid = publish(a, doc)
    drain(b, expect=1)
    drain(c, expect=1)
    drain(a, expect=1)
    chosen = str(uuid.uuid4())  # e.g. the id B's adapter will give its automatic 01

    publish(c, make_status(c.code, a.code, doc.document_id, "01"), message_id=chosen)
    publish(b, make_status(b.code, a.code, doc.document_id, "01"), message_id=chosen)

    assert len(drain(a, expect=2)) == 2  # both forwarded
    assert _state(db, a.code, mid, b.code) == "delivered"
    assert _state(db, a.code, mid, c.code) == "delivered"
    assert json.loads(drain(b, expect=1)[0].body)["kind"] == "accepted"


def test_two_agencies_may_use_the_same_submission_id_each_for_its_own_document(
    relay_env: Settings, db: Engine, relay: RelayProcess
) -> None:
    a, b, c = _agencies(relay_env, db, relay, 3)
    mid = str(uuid.uuid4())
    publish(a, make_document(a.code, [b.code]), message_id=mid)
    publish(c, make_document(c.code, [b.code]), message_id=mid)

    copies = drain(b, expect=2)
    assert len(copies) == 2 and copies[0].message_id != copies[1].message_id
    assert json.loads(drain(a, expect=1)[0].body)["kind"] == "accepted"
    assert json.loads(drain(c, expect=1)[0].body)["kind"] == "accepted"


# -- item 8: only a document's sender may revoke, update or replace it -------------------


@pytest.mark.parametrize("business_type", [1, 2])
def test_a_revoke_or_update_of_another_senders_document_is_refused(
    relay_env: Settings, db: Engine, relay: RelayProcess, business_type: int
) -> None:
    a, b, c = _agencies(relay_env, db, relay, 3)
    doc = make_document(a.code, [b.code])
    original = publish(a, doc)
    drain(b, expect=1)
    drain(a, expect=1)
    change = make_document(
        c.code,
        [b.code],
        document_id=doc.document_id,
        business={"document_id": doc.document_id, "bussiness_doc_type": business_type},
    )

    publish(c, change)

    receipt = json.loads(drain(c, expect=1)[0].body)
    assert receipt["kind"] == "rejected", receipt
    assert "only its sender" in receipt["reason"] and a.code in receipt["reason"]
    assert drain(b, timeout=1) == []
    with db.connect() as conn:
        kinds = conn.execute(
            select(events.c.kind)
            .join(deliveries, deliveries.c.id == events.c.delivery_id)
            .join(documents, documents.c.id == deliveries.c.document_pk)
            .where(documents.c.message_id == original)
        ).all()
    assert not {"revoked", "updated", "replaced"} & {k for (k,) in kinds}
