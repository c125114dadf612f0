"""``lienthong trace`` and ``lienthong failures`` read what the relay stored (issue 5)."""

from __future__ import annotations

import json
import secrets
import uuid

import pytest
from sqlalchemy import Engine, insert, update

from relay.config import Settings
from relay.db.tables import deliveries, documents, events, receipts
from relay.domain.outgoing import delivery_message_id, receipt_message_id
from tests.retry_support import run_cli
from tests.services import random_code

pytestmark = pytest.mark.integration


def _submission(
    engine: Engine, document_id: str, sender: str, recipient: str, business_type: int
) -> int:
    submission_id = str(uuid.uuid4())
    with engine.begin() as conn:
        pk: int = conn.execute(
            insert(documents)
            .values(
                message_id=submission_id,
                document_id=document_id,
                business_type=business_type,
                sender=sender,
                submitted_by=sender,
                subject="Về việc tổ chức hội nghị",
                payload=b"{}",
            )
            .returning(documents.c.id)
        ).scalar_one()
        did = conn.execute(
            insert(deliveries)
            .values(
                document_pk=pk,
                recipient=recipient,
                route_to=recipient,
                message_id=delivery_message_id(submission_id, recipient, by=sender),
                state="accepted" if business_type == 0 else "queued",
            )
            .returning(deliveries.c.id)
        ).scalar_one()
        conn.execute(
            insert(events).values(document_pk=pk, delivery_id=did, kind="queued", actor=recipient)
        )
        if business_type == 0:
            for code, staff in (("01", None), ("03", "Lê Văn Cường"), ("99", "Lê Văn Cường")):
                conn.execute(
                    insert(events).values(
                        document_pk=pk,
                        delivery_id=did,
                        kind="status",
                        status_code=code,
                        staff=staff,
                        actor=recipient,
                        message_id=str(uuid.uuid4()),
                    )
                )
    return pk


def test_trace_shows_every_submission_of_a_document_id_with_statuses_in_vietnamese(
    env: Settings, engine: Engine
) -> None:
    sender, recipient = random_code(), random_code()
    document_id = f"{sender},2026/11/24,{secrets.randbelow(10**6)}/UBND-VP"
    _submission(engine, document_id, sender, recipient, 0)
    _submission(engine, document_id, sender, recipient, 1)  # the revoke reuses the DocumentId

    code, out = run_cli(env, "trace", document_id)
    assert code == 0, out
    assert f"Document {document_id}: 2 submissions" in out
    assert "Văn bản mới (0)" in out and "Thu hồi (1)" in out
    assert "01 Đã đến" in out
    assert "03 Đã tiếp nhận  cán bộ: Lê Văn Cường" in out
    assert "99 Mã trạng thái không xác định (99)" in out  # unknown codes are shown
    assert f"Recipient {recipient}: ACCEPTED" in out and f"Recipient {recipient}: QUEUED" in out

    code, out = run_cli(env, "trace", document_id, "--json")
    assert code == 0, out
    data = json.loads(out)
    assert [s["business_type"] for s in data["submissions"]] == [0, 1]
    statuses = [
        (e["status_code"], e["status"], e["staff"])
        for e in data["submissions"][0]["recipients"][0]["events"]
        if e["kind"] == "status"
    ]
    assert statuses == [
        ("01", "Đã đến", None),
        ("03", "Đã tiếp nhận", "Lê Văn Cường"),
        ("99", "Mã trạng thái không xác định (99)", "Lê Văn Cường"),
    ]


def test_trace_opens_each_submission_with_its_submitted_event_from_the_stored_receipt(
    env: Settings, engine: Engine
) -> None:
    """The relay writes no event row for a submission; trace makes it from the documents row
    and the accepted receipt (which names the recipients that were not routed)."""
    sender, recipient, unknown = random_code(), random_code(), random_code()
    document_id = f"{sender},2026/11/24,{secrets.randbelow(10**6)}/UBND-VP"
    pk = _submission(engine, document_id, sender, recipient, 0)
    with engine.begin() as conn:
        submission_id = (
            conn.execute(documents.select().where(documents.c.id == pk)).one().message_id
        )
        body = {
            "schema": "lienthong.receipt/1",
            "kind": "accepted",
            "in_reply_to": submission_id,
            "recipients": [
                {"code": recipient, "outcome": "queued", "route_to": recipient, "reason": None},
                {"code": unknown, "outcome": "unknown_recipient", "reason": "not in directory"},
            ],
        }
        conn.execute(
            insert(receipts).values(
                receipt_id=receipt_message_id(submission_id, "accepted", by=sender),
                agency=sender,
                in_reply_to=submission_id,
                kind="accepted",
                body=body,
            )
        )

    code, out = run_cli(env, "trace", document_id, "--json")
    assert code == 0, out
    first = json.loads(out)["submissions"][0]["events"][0]
    assert first["kind"] == "submitted"
    assert first["actor"] == sender
    assert first["description"] == "Văn bản mới"
    assert first["detail"]["message_id"] == submission_id
    assert first["detail"]["not_routed"] == [
        {"code": unknown, "outcome": "unknown_recipient", "reason": "not in directory"}
    ]


def test_trace_counts_failed_attempts_not_publishes(env: Settings, engine: Engine) -> None:
    """``deliveries.attempts`` counts copies that came back (relay/retry): a document delivered
    at the first publish must not read "attempts 0" beside "attempt 1 published"."""
    sender, recipient, other = random_code(), random_code(), random_code()
    document_id = f"{sender},2026/11/24,{secrets.randbelow(10**6)}/UBND-VP"
    pk = _submission(engine, document_id, sender, recipient, 1)
    with engine.begin() as conn:
        conn.execute(
            update(deliveries).where(deliveries.c.document_pk == pk).values(state="delivered")
        )
    pk2 = _submission(engine, document_id, sender, other, 1)
    with engine.begin() as conn:
        conn.execute(
            update(deliveries)
            .where(deliveries.c.document_pk == pk2)
            .values(state="retrying", attempts=2, last_error="rejected")
        )

    code, out = run_cli(env, "trace", document_id)
    assert code == 0, out
    assert "attempt 1 published to the recipient's inbox" in out
    lines = out.splitlines()
    delivered = [ln for ln in lines if f"Recipient {recipient}:" in ln]
    assert [ln.strip() for ln in delivered] == [f"Recipient {recipient}: DELIVERED"]
    retrying = [ln for ln in lines if f"Recipient {other}:" in ln]
    assert len(retrying) == 1 and "RETRYING  failed attempts 2" in retrying[0], retrying
    assert "attempts 0" not in out

    code, out = run_cli(env, "failures", "--limit", "100000")
    assert code == 0, out
    header = next(ln for ln in out.splitlines() if ln.startswith("STATE "))
    assert header.split()[:5] == ["STATE", "DOCUMENT", "RECIPIENT", "FAILED", "ATTEMPTS"], header
    row = next(ln for ln in out.splitlines() if other in ln)
    assert row.split()[:4] == ["retrying", document_id, other, "2"], row


def test_failures_json_has_deliveries_and_destinations(env: Settings) -> None:
    code, out = run_cli(env, "failures", "--json")
    assert code == 0, out
    data = json.loads(out)
    # "messages": bounced statuses and receipts (issue 12 item 5)
    assert set(data) == {"deliveries", "destinations_down", "messages"}
    for d in data["deliveries"]:
        assert d["state"] in ("failed", "retrying")
        assert {"document_id", "recipient", "attempts", "last_error", "next_attempt_at"} <= set(d)
