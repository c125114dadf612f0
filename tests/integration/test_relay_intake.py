"""A relay worker holds a bounded number of outbox bytes: big attachments cannot exhaust it."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, func, select

from relay.config import Settings
from relay.db.engine import make_engine
from relay.db.tables import deliveries
from tests.conftest import EnvFactory
from tests.relay_support import (
    RelayProcess,
    add_agency,
    attachment,
    drain,
    make_document,
    publish_many,
    wait_until,
)
from tests.services import random_code

pytestmark = pytest.mark.integration

DOCS = 30
ATTACHMENT = 300 * 1024  # about 400 KB on the wire (base64), so a few exceed 1 MiB held


@pytest.fixture()
def intake_env(make_env: EnvFactory) -> Settings:
    return make_env().model_copy(
        update={"agency_poll_seconds": 0.2, "intake_max_bytes": 1024 * 1024, "batch_size": 5}
    )


@pytest.fixture()
def db(intake_env: Settings) -> Iterator[Engine]:
    eng = make_engine(intake_env.database_url)
    yield eng
    eng.dispose()


def test_a_worker_over_its_byte_budget_pauses_intake_and_still_delivers_everything_in_order(
    intake_env: Settings, db: Engine
) -> None:
    a, b = (add_agency(intake_env, db, random_code()) for _ in range(2))
    docs = []
    for _ in range(DOCS):
        doc = make_document(a.code, [b.code])
        doc.attachments = [attachment("scan.pdf", os.urandom(ATTACHMENT))]
        docs.append(doc)
    ids = publish_many(a, docs)

    with RelayProcess(intake_env, log_level="debug") as relay:
        at_b = drain(b, expect=DOCS, timeout=60)
        receipts = drain(a, expect=DOCS, timeout=30)

        def all_queued() -> bool:
            with db.connect() as conn:
                return bool(
                    conn.execute(
                        select(func.count()).where(deliveries.c.state == "queued")
                    ).scalar_one()
                    == DOCS
                )

        wait_until(all_queued, timeout=30)
        log = relay.log_text()

    assert [m.headers["x-lienthong-submission-id"] for m in at_b] == ids  # once each, in order
    assert sorted(json.loads(m.body)["in_reply_to"] for m in receipts) == sorted(ids)
    paused = [json.loads(line) for line in log.splitlines() if '"relay.intake_paused"' in line]
    assert paused, "the relay never held more than its budget"
    # It stopped taking messages soon after the budget: never more than one message over it.
    assert all(p["held_bytes"] <= 1024 * 1024 + 500 * 1024 for p in paused)
    assert '"relay.intake_resumed"' in log
