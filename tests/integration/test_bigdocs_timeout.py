"""A chunked transfer that never finishes (issue 17): failed, its sender told, chunks refused.

Real RabbitMQ and PostgreSQL, the relay as a process, the transfer timeout set to seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import time

import pytest
from sqlalchemy import Engine, text

from relay.config import Settings
from relay.queries.failures import load_failures
from schemas.chunks import TYPE_CHUNK, TYPE_CHUNK_REQUEST
from tests.bigdocs_support import chunk_messages, chunk_request, chunked_document, stored_chunks
from tests.relay_support import (
    Agency,
    Received,
    RelayProcess,
    add_agency,
    drain,
    make_document,
    make_status,
    publish,
    publish_many,
    wait_until,
)
from tests.services import random_code

pytestmark = pytest.mark.integration

TIMEOUT_SECONDS = 4.0
RELAY_SETTINGS = {"transfer_timeout_hours": TIMEOUT_SECONDS / 3600}

KiB = 1024


@pytest.fixture()
def trio(relay_env: Settings, db: Engine, relay: RelayProcess) -> tuple[Agency, Agency, Agency]:
    agencies = tuple(add_agency(relay_env, db, random_code()) for _ in range(3))
    relay.wait_consuming([a.code for a in agencies])
    return agencies  # type: ignore[return-value]


def _state(db: Engine, message_id: str) -> tuple[str, str | None]:
    with db.connect() as conn:
        row = conn.execute(
            text("SELECT state, last_error FROM deliveries WHERE message_id = :m"),
            {"m": message_id},
        ).one()
    return str(row.state), row.last_error


def _receipts_until(agency: Agency, kind: str, timeout: float) -> list[Received]:
    """Everything in ``agency``'s inbox until a receipt of ``kind`` came (or ``timeout``)."""
    got: list[Received] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got += drain(agency, timeout=1.0, quiet=0.3)
        if any(m.type == "receipt" and json.loads(m.body)["kind"] == kind for m in got):
            break
    return got


def test_a_transfer_never_finished_fails_tells_the_sender_and_refuses_further_requests(
    trio: tuple[Agency, Agency, Agency], db: Engine
) -> None:
    a, b, c = trio
    data = os.urandom(200 * KiB)
    sha = hashlib.sha256(data).hexdigest()
    publish_many(a, chunk_messages(data, 128 * KiB), message_type=TYPE_CHUNK)
    wait_until(lambda: stored_chunks(db, a) == (2, len(data)), timeout=20)
    chunked = json.loads(chunked_document(a, b, data))
    chunked["recipients"].append({"organ_id": c.code})
    publish(a, json.dumps(chunked).encode())
    plain = make_document(a.code, [b.code])  # no chunks: the transfer timeout does not apply
    publish(a, plain)
    to_b = {json.loads(m.body)["document_id"]: m for m in drain(b, expect=2, timeout=30)}
    to_b_chunked = to_b[chunked["document_id"]]
    assert to_b[plain.document_id].type == "document"
    [to_c] = drain(c, expect=1, timeout=30)
    # C receives the document whole and answers 01 at once; B never finishes.
    publish(c, make_status(c.code, a.code, chunked["document_id"], "01"))
    wait_until(lambda: _state(db, to_c.message_id)[0] == "delivered", timeout=TIMEOUT_SECONDS)
    assert [m.type for m in drain(c, expect=1, timeout=30)] == ["receipt"]  # the 01's

    got = _receipts_until(a, "delivery_failed", timeout=TIMEOUT_SECONDS + 20)
    failed = [
        json.loads(m.body)
        for m in got
        if m.type == "receipt" and json.loads(m.body)["kind"] == "delivery_failed"
    ]
    assert len(failed) == 1, [json.loads(m.body) for m in got if m.type == "receipt"]
    [receipt] = failed
    assert receipt["recipient"] == b.code
    assert receipt["document_id"] == chunked["document_id"]
    reason = receipt["reason"]
    assert b.code in reason and "'scan.pdf'" in reason and f"{len(data):,} bytes" in reason
    assert sha in reason and "send the document again" in reason

    state, error = _state(db, to_b_chunked.message_id)
    assert state == "failed" and error is not None and "transfer timed out" in error
    assert _state(db, to_c.message_id)[0] == "delivered"
    assert _state(db, to_b[plain.document_id].message_id)[0] == "queued"
    with db.connect() as conn:
        events = conn.execute(
            text(
                "SELECT e.kind, e.description FROM events e JOIN deliveries d"
                " ON d.id = e.delivery_id WHERE d.message_id = :m ORDER BY e.id"
            ),
            {"m": to_b_chunked.message_id},
        ).all()
        failures = load_failures(conn)
    assert [e.kind for e in events if e.kind == "failed"] == ["failed"]
    assert "transfer timed out" in events[-1].description
    listed = [f for f in failures.deliveries if f.document_id == chunked["document_id"]]
    assert [(f.recipient, f.state) for f in listed] == [(b.code, "failed")]

    # B's adapter asks again: the hub refuses, saying which transfer and why.
    request_id = publish(b, chunk_request(a, data), message_type=TYPE_CHUNK_REQUEST)
    [answer] = drain(b, expect=1, timeout=30)
    assert answer.type == "chunk_refused"
    assert answer.correlation_id == request_id
    refused = json.loads(answer.body)
    assert refused["schema"] == "lienthong.chunk_refused/1"
    assert (refused["sender"], refused["sha256"]) == (a.code, sha)
    assert refused["message_ids"] == [to_b_chunked.message_id]
    assert "transfer timed out" in refused["reason"]
    # C, whose delivery did not fail, is still served.
    publish(c, chunk_request(a, data), message_type=TYPE_CHUNK_REQUEST)
    assert [m.type for m in drain(c, expect=2, timeout=30)] == [TYPE_CHUNK, TYPE_CHUNK]
