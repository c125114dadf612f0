"""The retry worker against real RabbitMQ and PostgreSQL (issue 5), without the relay process.

Documents and deliveries are written as the relay writes them; a fake adapter consumes the
recipient's inbox with the recipient's credentials and rejects what the test says.
"""

from __future__ import annotations

import json
import re
import time
import uuid

import pika
import pytest
from sqlalchemy import Engine, func, insert, select

from relay.broker.management import ManagementClient
from relay.config import Settings
from relay.db.tables import deliveries, documents, events, receipts, rejections
from relay.domain.outgoing import delivery_message_id
from relay.retry.policy import backoff_ceiling
from schemas import topology as t
from tests.retry_support import (
    FAST,
    FakeAdapter,
    add_agency,
    delivery_row,
    drain,
    event_kinds,
    retry_worker,
    run_cli,
    running_adapter,
    submit,
    wait_until,
)
from tests.services import random_code

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def fast_env(env: Settings) -> Settings:
    """The run's shared environment with short retry delays (agency codes keep tests apart)."""
    return env.model_copy(update=FAST)


@pytest.fixture(scope="module")
def db(engine: Engine) -> Engine:
    return engine


def test_a_delivery_rejected_twice_arrives_once_after_two_retries_that_follow_the_policy(
    fast_env: Settings, db: Engine, management: ManagementClient
) -> None:
    sender = add_agency(fast_env, db, management)
    recipient = add_agency(fast_env, db, management)
    adapter = FakeAdapter(fast_env, db, recipient, accept=lambda mid, n: n >= 3)
    with retry_worker(fast_env), running_adapter(adapter):
        sent = submit(db, fast_env, sender.code, recipient.code)
        wait_until(lambda: len(adapter.acked) == 1, 15, "the third copy to be accepted")
        time.sleep(0.5)  # nothing more may arrive
    assert adapter.acked == [sent.delivery_message_id]
    assert adapter.seen == {sent.delivery_message_id: 3}
    assert event_kinds(db, sent.delivery_message_id) == [
        "queued",
        "returned",
        "retry_scheduled",
        "retry_published",
        "returned",
        "retry_scheduled",
        "retry_published",
    ]
    # Each retry waited no longer than the policy allows (plus the scheduler's tick).
    arrivals = adapter.received_at[sent.delivery_message_id]
    with db.connect() as conn:
        scheduled = (
            conn.execute(
                select(events.c.detail)
                .join(deliveries, deliveries.c.id == events.c.delivery_id)
                .where(
                    deliveries.c.message_id == sent.delivery_message_id,
                    events.c.kind == "retry_scheduled",
                )
                .order_by(events.c.id)
            )
            .scalars()
            .all()
        )
    for failed_attempt, detail in enumerate(scheduled, 1):
        ceiling = backoff_ceiling(
            failed_attempt, base=fast_env.retry_base_seconds, cap=fast_env.retry_max_seconds
        )
        assert 0 <= detail["delay_seconds"] <= ceiling
        gap = arrivals[failed_attempt] - arrivals[failed_attempt - 1]
        # never before its time; late only by the scheduler's tick and a loaded machine
        assert gap >= detail["delay_seconds"] - 0.05
        assert gap <= ceiling + fast_env.retry_tick_seconds + 1.5
    row = delivery_row(db, sent.delivery_message_id)
    assert row["state"] == "delivered"
    assert row["attempts"] == 2

    code, out = run_cli(fast_env, "trace", sent.document_id)
    assert code == 0, out
    assert "attempt 2 published" in out and "attempt 3 published" in out
    assert out.count("returned") == 2
    assert f"Recipient {recipient.code}: DELIVERED" in out

    code, out = run_cli(fast_env, "trace", sent.document_id, "--json")
    assert code == 0, out
    timeline = json.loads(out)["submissions"][0]["recipients"][0]
    assert [e["kind"] for e in timeline["events"]].count("retry_published") == 2


def test_a_recipient_that_never_accepts_fails_and_the_sender_is_told_then_resend_delivers_once(
    fast_env: Settings, db: Engine, management: ManagementClient
) -> None:
    sender = add_agency(fast_env, db, management)
    recipient = add_agency(fast_env, db, management)
    fixed = {"yes": False}
    adapter = FakeAdapter(fast_env, db, recipient, accept=lambda mid, n: fixed["yes"])
    with retry_worker(fast_env), running_adapter(adapter):
        sent = submit(db, fast_env, sender.code, recipient.code)
        wait_until(
            lambda: delivery_row(db, sent.delivery_message_id)["state"] == "failed",
            15,
            "the delivery to fail",
        )
        assert adapter.seen[sent.delivery_message_id] == fast_env.retry_max_attempts

        # The sender's inbox holds a delivery_failed receipt naming recipient and reason.
        got: list[tuple[str, bytes]] = []

        def receipts_arrived() -> bool:
            got.extend(drain(fast_env, sender))
            return bool(got)

        wait_until(receipts_arrived, 5, "a receipt")
        assert len(got) == 1
        kind, body = got[0]
        receipt = json.loads(body)
        assert kind == t.TYPE_RECEIPT
        assert receipt["kind"] == "delivery_failed"
        assert receipt["recipient"] == recipient.code
        assert receipt["in_reply_to"] == sent.submission_id
        assert "rejected by the recipient's adapter" in receipt["reason"]
        with db.connect() as conn:
            stored = conn.execute(
                select(func.count())
                .select_from(receipts)
                .where(
                    receipts.c.in_reply_to == sent.submission_id,
                    receipts.c.kind == "delivery_failed",
                )
            ).scalar_one()
        assert stored == 1

        code, out = run_cli(fast_env, "failures", "--json")
        assert code == 0, out
        listed = [d for d in json.loads(out)["deliveries"] if d["document_id"] == sent.document_id]
        assert len(listed) == 1
        assert listed[0]["state"] == "failed"
        assert listed[0]["attempts"] == fast_env.retry_max_attempts
        assert "rejected" in listed[0]["last_error"]
        code, out = run_cli(fast_env, "failures")
        assert code == 0 and sent.document_id in out and "failed" in out

        # The recipient is fixed; resend delivers once, a second resend changes nothing.
        fixed["yes"] = True
        code, out = run_cli(fast_env, "resend", sent.document_id, "--by", "Nguyễn Văn An")
        assert code == 0, out
        assert f"resent {sent.document_id} to {recipient.code}" in out
        wait_until(lambda: len(adapter.acked) == 1, 10, "the resent copy")
        code, out = run_cli(fast_env, "resend", sent.document_id, "--by", "Nguyễn Văn An")
        assert code == 0, out
        assert "nothing to resend" in out
        time.sleep(0.5)
    assert adapter.acked == [sent.delivery_message_id]
    assert adapter.seen[sent.delivery_message_id] == fast_env.retry_max_attempts + 1
    row = delivery_row(db, sent.delivery_message_id)
    assert row["state"] == "delivered" and row["attempts"] == 0
    with db.connect() as conn:
        resent = conn.execute(
            select(events.c.actor, events.c.at).where(
                events.c.kind == "resent", events.c.delivery_id == row["id"]
            )
        ).all()
    assert [r.actor for r in resent] == ["Nguyễn Văn An"]
    code, out = run_cli(fast_env, "trace", sent.document_id)
    assert "resent by Nguyễn Văn An" in out and "failed after 3 attempts" in out


def test_resend_and_trace_of_an_unknown_document_exit_1_with_a_clear_error(
    fast_env: Settings,
) -> None:
    for command in ("trace", "resend"):
        code, out = run_cli(fast_env, command, "000.00.00.G22,2026/01/01,nope")
        assert code == 1
        assert "no document '000.00.00.G22,2026/01/01,nope' is known" in out


def test_a_returned_message_that_is_no_delivery_is_recorded_and_acked(
    fast_env: Settings, db: Engine
) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(fast_env.amqp_url))
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        for mid, kind in (("no-such-delivery", t.TYPE_DOCUMENT), ("a-status", t.TYPE_STATUS)):
            ch.basic_publish(
                t.RETURNED_EXCHANGE,
                "",
                b"{}",
                pika.BasicProperties(
                    message_id=mid, type=kind, headers={"x-first-death-reason": "rejected"}
                ),
            )
    finally:
        conn.close()
    with retry_worker(fast_env):

        def recorded() -> int:
            with db.connect() as c:
                n: int = c.execute(
                    select(func.count())
                    .select_from(rejections)
                    .where(rejections.c.message_id.in_(["no-such-delivery", "a-status"]))
                ).scalar_one()
            return n

        wait_until(lambda: recorded() == 2, 10, "both strays to be recorded")
    with db.connect() as c:
        reasons = c.execute(
            select(rejections.c.reason).where(rejections.c.message_id == "no-such-delivery")
        ).scalar_one()
    assert "matches no delivery" in reasons


def test_a_returned_message_with_a_nul_in_its_id_or_headers_is_recorded_safely(
    fast_env: Settings, db: Engine
) -> None:
    # PostgreSQL text and jsonb refuse NUL: kept as it was, the record failed and the worker
    # took the message again and again; the stray after it waited behind it.
    conn = pika.BlockingConnection(pika.URLParameters(fast_env.amqp_url))
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        for mid, headers in (
            ("nul\x00in-the-id", {"x-first-death-reason": "rejected"}),
            ("nul-in-a-header", {"x-note": "a\x00b", "x\x00key": b"\x00\xff"}),
            ("after-the-nuls", {}),
        ):
            ch.basic_publish(
                t.RETURNED_EXCHANGE,
                "",
                b"{}",
                pika.BasicProperties(message_id=mid, type=t.TYPE_STATUS, headers=headers),
            )
    finally:
        conn.close()
    wanted = ["nul\\x00in-the-id", "nul-in-a-header", "after-the-nuls"]
    with retry_worker(fast_env):

        def recorded() -> int:
            with db.connect() as c:
                n: int = c.execute(
                    select(func.count())
                    .select_from(rejections)
                    .where(rejections.c.message_id.in_(wanted))
                ).scalar_one()
            return n

        wait_until(lambda: recorded() == 3, 15, "the three strays to be recorded")
    with db.connect() as c:
        props = c.execute(
            select(rejections.c.properties).where(rejections.c.message_id == "nul-in-a-header")
        ).scalar_one()
    assert props["headers"]["x-note"] == "a\\x00b"


def test_a_delivery_nobody_takes_before_the_inbox_ttl_comes_back_and_fails_with_that_reason(
    fast_env: Settings, db: Engine, management: ManagementClient
) -> None:
    sender = add_agency(fast_env, db, management)
    recipient = add_agency(fast_env, db, management)  # no adapter consumes its inbox
    inbox = t.inbox_queue(recipient.code)
    # A stricter policy on this one inbox, as an operator would set: TTL of half a second.
    management.put_policy(
        fast_env.vhost,
        f"test-ttl-{recipient.code}",
        pattern="^" + re.escape(inbox) + "$",
        definition={"dead-letter-exchange": t.RETURNED_EXCHANGE, "message-ttl": 500},
        apply_to="queues",
        priority=50,
    )
    settings = fast_env.model_copy(update={"retry_max_attempts": 2})
    with retry_worker(settings):
        sent = submit(db, settings, sender.code, recipient.code)
        wait_until(
            lambda: delivery_row(db, sent.delivery_message_id)["state"] == "failed",
            20,
            "the delivery to expire twice and fail",
        )
    row = delivery_row(db, sent.delivery_message_id)
    assert row["attempts"] == 2
    assert "is the adapter running?" in str(row["last_error"])
    assert f"[expired in {inbox}]" in str(row["last_error"])
    got = drain(settings, sender)
    assert [json.loads(body)["kind"] for _, body in got] == ["delivery_failed"]

    code, out = run_cli(settings, "resend", sent.document_id, "--recipient", "000.00.00.Z99")
    assert code == 1
    assert "--recipient: '000.00.00.Z99' is not a recipient" in out


def test_a_retry_that_no_inbox_takes_spends_an_attempt_and_ends_failed(
    fast_env: Settings, db: Engine, management: ManagementClient
) -> None:
    sender = add_agency(fast_env, db, management)
    gone = random_code()  # no queue is bound for it: publishes are returned as unroutable
    submission_id = str(uuid.uuid4())
    mid = delivery_message_id(submission_id, gone, by=sender.code)
    with db.begin() as conn:
        pk = conn.execute(
            insert(documents)
            .values(
                message_id=submission_id,
                document_id=f"{sender.code},2026/11/24,{uuid.uuid4().hex[:8]}/X",
                business_type=0,
                sender=sender.code,
                submitted_by=sender.code,
                payload=b"{}",
            )
            .returning(documents.c.id)
        ).scalar_one()
        conn.execute(
            insert(deliveries).values(
                document_pk=pk,
                recipient=gone,
                route_to=gone,
                message_id=mid,
                state="retrying",
                attempts=1,
                next_attempt_at=func.now(),
            )
        )
    with retry_worker(fast_env):
        wait_until(lambda: delivery_row(db, mid)["state"] == "failed", 15, "the delivery to fail")
    row = delivery_row(db, mid)
    assert row["attempts"] == fast_env.retry_max_attempts
    assert "no inbox takes messages" in str(row["last_error"])
