"""A batch's receipts to one agency go as one ``lienthong.receipts/1`` message (issue 14),
against real services: fewer messages in the sender's inbox, every receipt inside, each under
the id it has alone."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import Engine, select

from relay.config import Settings
from relay.db.tables import receipts
from tests.relay_support import RelayProcess, add_agency, drain, make_document, publish_many
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
