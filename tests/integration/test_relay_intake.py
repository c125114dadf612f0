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
from relay.worker.timings import STAGES
from schemas import topology as t
from schemas.envelope import encode_message
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

SENDERS, DOCS = 4, 8  # per sender, all queued before the relay starts
ATTACHMENT = 300 * 1024  # about 400 KB on the wire (base64), so a few exceed 1 MiB held
BOUND = 1024 * 1024


@pytest.fixture()
def intake_env(make_env: EnvFactory) -> Settings:
    return make_env().model_copy(
        update={"agency_poll_seconds": 0.2, "intake_max_bytes": BOUND, "batch_size": 5}
    )


@pytest.fixture()
def db(intake_env: Settings) -> Iterator[Engine]:
    eng = make_engine(intake_env.database_url)
    yield eng
    eng.dispose()


def test_a_worker_over_its_byte_budget_pauses_intake_and_still_delivers_everything_in_order(
    intake_env: Settings, db: Engine
) -> None:
    """Four outboxes with a backlog of large documents when the relay starts: it holds about
    its budget, not the backlog (RabbitMQ bounds what it pushes by count only, and pushes a
    whole prefetch before the consumers can be cancelled), and delivers everything in order."""
    b = add_agency(intake_env, db, random_code())
    senders = [add_agency(intake_env, db, random_code()) for _ in range(SENDERS)]
    ids: dict[str, list[str]] = {}
    for a in senders:
        docs = []
        for _ in range(DOCS):
            doc = make_document(a.code, [b.code])
            doc.attachments = [attachment("scan.pdf", os.urandom(ATTACHMENT))]
            docs.append(doc)
        ids[a.code] = publish_many(a, docs)
    size = len(encode_message(docs[0]))  # each about the same

    with RelayProcess(intake_env, log_level="debug") as relay:
        at_b = drain(b, expect=SENDERS * DOCS, timeout=60)
        for a in senders:
            receipts = drain(a, expect=DOCS, timeout=30)
            assert sorted(json.loads(m.body)["in_reply_to"] for m in receipts) == sorted(
                ids[a.code]
            )

        def all_queued() -> bool:
            with db.connect() as conn:
                return bool(
                    conn.execute(
                        select(func.count()).where(
                            deliveries.c.route_to == b.code, deliveries.c.state == "queued"
                        )
                    ).scalar_one()
                    == SENDERS * DOCS
                )

        wait_until(all_queued, timeout=30)
        log = relay.log_text()

    for a in senders:  # once each, in order
        got = [
            m.headers[t.HEADER_SUBMISSION_ID] for m in at_b if m.headers[t.HEADER_SENDER] == a.code
        ]
        assert got == ids[a.code]
    lines = [json.loads(line) for line in log.splitlines() if '"relay.intake_' in line]
    paused = [p for p in lines if p["event"] == "relay.intake_paused"]
    assert paused, "the relay never held more than its budget"
    # It stopped taking messages soon after the budget: never more than one message over it.
    assert all(p["held_bytes"] <= BOUND + size for p in paused)
    assert any(p["event"] == "relay.intake_resumed" for p in lines)
    # Nor did the broker push more than one message per outbox past it meanwhile.
    peak = max(p["held_peak_bytes"] for p in lines)
    assert peak <= BOUND + SENDERS * size, f"held {peak} bytes against a bound of {BOUND}"
    # Each batch says where its time went, once it is acked (relay.worker.timings): every
    # document in exactly one of them, every stage timed.
    flights = [json.loads(line) for line in log.splitlines() if '"relay.flight"' in line]
    assert sum(f["documents"] for f in flights) == SENDERS * DOCS
    for f in flights:
        assert all(f[f"{stage}_ms"] >= 0 for stage in STAGES), f
        assert f["store_ms"] > 0 and f["confirm_ms"] > 0, f


FANOUT_DOCS, FANOUT_TO = 12, 24


def test_a_batch_fanned_out_to_many_inboxes_holds_its_copies_within_the_bound(
    make_env: EnvFactory,
) -> None:
    """Documents to many recipients: their copies go out as confirms free the bound (1 MiB
    here: about 16 copies, fewer than one document's 24, however the documents fall into
    batches), not all at once, and every inbox still gets every document once, in order."""
    bound = 1024 * 1024
    env = make_env().model_copy(
        update={"agency_poll_seconds": 0.2, "intake_max_bytes": bound, "batch_size": 50}
    )
    eng = make_engine(env.database_url)
    try:
        a = add_agency(env, eng, random_code())
        recipients = [add_agency(env, eng, random_code()) for _ in range(FANOUT_TO)]
        docs = []
        for _ in range(FANOUT_DOCS):
            doc = make_document(a.code, [r.code for r in recipients])
            # about 64 KB per copy: below the size sent without copying, so each copy counts
            doc.attachments = [attachment("scan.pdf", os.urandom(44 * 1024))]
            docs.append(doc)
        ids = publish_many(a, docs)
        with RelayProcess(env, log_level="debug") as relay:
            for r in recipients:
                got = drain(r, expect=FANOUT_DOCS, timeout=60)
                assert [m.headers["x-lienthong-submission-id"] for m in got] == ids
            drain(a, expect=FANOUT_DOCS, timeout=30)

            def all_queued() -> bool:
                with eng.connect() as conn:
                    n = conn.execute(
                        select(func.count()).where(
                            deliveries.c.route_to.in_([r.code for r in recipients]),
                            deliveries.c.state == "queued",
                        )
                    ).scalar_one()
                return bool(n == FANOUT_DOCS * FANOUT_TO)

            wait_until(all_queued, timeout=30)
            log = relay.log_text()
    finally:
        eng.dispose()
    waiting = [json.loads(line) for line in log.splitlines() if '"relay.copies_waiting"' in line]
    assert waiting, "every copy went out at once: the bound was never reached"
    # at most one copy (about 62 KB counted) over the bound when publishing stopped
    assert all(w["in_flight_bytes"] < bound + 64 * 1024 for w in waiting), waiting
