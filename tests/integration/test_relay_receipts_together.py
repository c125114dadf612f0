"""A batch's receipts to one agency go as one ``lienthong.receipts/1`` message (issue 14),
against real services: fewer messages in the sender's inbox, every receipt inside, each under
the id it has alone."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import Engine, select

from relay.config import Settings
from relay.db.tables import bounces, receipts
from schemas import topology as t
from tests.relay_support import (
    RelayProcess,
    add_agency,
    connect,
    drain,
    make_document,
    publish_many,
    wait_until,
)
from tests.retry_support import FAST
from tests.services import random_code

pytestmark = pytest.mark.integration

DOCUMENTS = 40


def test_the_receipts_of_documents_waiting_together_come_together(
    relay_env: Settings, db: Engine
) -> None:
    a, b = (add_agency(relay_env, db, random_code()) for _ in range(2))
    # queued while no relay runs, so that one batch takes them all
    sent = publish_many(a, [make_document(a.code, [b.code]) for _ in range(DOCUMENTS)])

    with RelayProcess(relay_env):
        copies = drain(b, expect=DOCUMENTS, timeout=30)
        answers = drain(a, expect=DOCUMENTS, timeout=30)

    assert len(copies) == DOCUMENTS
    assert sorted(json.loads(r.body)["in_reply_to"] for r in answers) == sorted(sent)
    assert {r.type for r in answers} == {"receipt"}
    messages = {r.group or r.message_id for r in answers}
    assert len(messages) < DOCUMENTS // 2, f"{len(messages)} messages for {DOCUMENTS} receipts"
    # each receipt under the id it has alone, which is the one stored
    assert [r.message_id for r in answers] == [json.loads(r.body)["receipt_id"] for r in answers]
    with db.connect() as conn:
        stored = set(
            conn.execute(select(receipts.c.receipt_id).where(receipts.c.agency == a.code)).scalars()
        )
    assert {r.message_id for r in answers} == stored
    assert drain(a, timeout=1) == []


def test_receipts_that_come_back_together_are_retried_together(
    relay_env: Settings, db: Engine
) -> None:
    settings = relay_env.model_copy(update=FAST)
    a, b = (add_agency(settings, db, random_code()) for _ in range(2))
    sent = publish_many(a, [make_document(a.code, [b.code]) for _ in range(10)])

    with RelayProcess(settings):
        # A's adapter cannot take the first message of receipts: the inbox dead-letters it to
        # the relay, which keeps it and sends it again
        assert a.amqp_url is not None
        conn = connect(a.amqp_url)
        try:
            ch = conn.channel()
            refused = None
            for method, props, _body in ch.consume(t.inbox_queue(a.code), inactivity_timeout=20):
                assert method is not None, "no receipts came"
                if props.type == t.TYPE_RECEIPTS:
                    ch.basic_reject(method.delivery_tag, requeue=False)
                    refused = props.message_id
                    break
                ch.basic_ack(method.delivery_tag)  # a lone receipt, if the relay sent one
            ch.cancel()
        finally:
            conn.close()

        def bounced() -> bool:
            with db.connect() as c:
                row = c.execute(
                    select(bounces.c.message_type, bounces.c.attempts).where(
                        bounces.c.message_id == refused
                    )
                ).first()
            return row is not None and tuple(row) == (t.TYPE_RECEIPTS, 1)

        wait_until(bounced, timeout=20)
        again = drain(a, expect=1, timeout=20)

    assert {r.group for r in again} == {refused}
    assert {json.loads(r.body)["in_reply_to"] for r in again} <= set(sent)
    drain(b, expect=10, timeout=5)


def test_with_group_receipts_off_every_receipt_goes_alone(relay_env: Settings, db: Engine) -> None:
    # for a hub whose adapters are not all upgraded yet (they refuse lienthong.receipts/1)
    settings = relay_env.model_copy(update={"group_receipts": False})
    a, b = (add_agency(settings, db, random_code()) for _ in range(2))
    sent = publish_many(a, [make_document(a.code, [b.code]) for _ in range(10)])

    with RelayProcess(settings):
        drain(b, expect=10, timeout=30)
        answers = drain(a, expect=10, timeout=30)

    assert sorted(json.loads(r.body)["in_reply_to"] for r in answers) == sorted(sent)
    assert [r.group for r in answers] == [None] * 10
