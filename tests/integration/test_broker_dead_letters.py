"""Nothing is deleted by a delivery limit: a submission the relay keeps failing on is set
aside and its sender told, and what the relay cannot handle either is parked (issue 12, item 9).

The limits are set low (2) for the test; the policies are those ``relay setup`` declares.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest
from sqlalchemy import Engine, select

from relay.config import Settings
from relay.db.engine import make_engine
from relay.db.tables import receipts, rejections
from relay.directory.service import add_agency
from relay.retry.deadletters import DeadSubmission, FailedSubmissionsWorker, handle_dead_submission
from schemas import topology as t
from tests.conftest import EnvFactory
from tests.integration.test_agency_cli import new_code, remove_created_users
from tests.services import random_code

pytestmark = pytest.mark.integration

__all__ = ["remove_created_users"]  # the fixture, imported to run here too

LIMIT = 2


@pytest.fixture(scope="module")
def dl_env(make_env: EnvFactory) -> Settings:
    return make_env(outbox_delivery_limit=LIMIT, dead_letter_delivery_limit=LIMIT)  # type: ignore[call-arg]


@pytest.fixture
def admin(dl_env: Settings) -> Iterator[pika.adapters.blocking_connection.BlockingChannel]:
    conn = pika.BlockingConnection(pika.URLParameters(dl_env.amqp_url))
    ch = conn.channel()
    ch.confirm_delivery()
    yield ch
    conn.close()


def count(ch: pika.adapters.blocking_connection.BlockingChannel, queue: str) -> int:
    return int(ch.queue_declare(queue, passive=True).method.message_count)


def wait_for(ch: pika.adapters.blocking_connection.BlockingChannel, queue: str, n: int) -> None:
    deadline = time.monotonic() + 20
    while count(ch, queue) < n:
        assert time.monotonic() < deadline, f"{queue} never held {n} message(s)"
        time.sleep(0.1)


def fail_until_gone(ch: pika.adapters.blocking_connection.BlockingChannel, queue: str) -> int:
    """Take the queue's message and hand it back (as a crashing consumer does) until the
    queue no longer has it; how many times it was taken."""
    taken = 0
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        method, _props, _body = ch.basic_get(queue, auto_ack=False)
        if method is None:
            if count(ch, queue) == 0:
                return taken
            time.sleep(0.05)
            continue
        taken += 1
        ch.basic_nack(method.delivery_tag, requeue=True)
    raise AssertionError(f"{queue} kept its message after {taken} deliveries")


def test_a_submission_the_relay_keeps_failing_on_is_set_aside_and_its_sender_told(
    dl_env: Settings, admin: pika.adapters.blocking_connection.BlockingChannel, tmp_path: Path
) -> None:
    code, password = new_code(), uuid.uuid4().hex
    secret = tmp_path / "secret"
    secret.write_text(password)
    add_agency(dl_env, code, "Bộ Khoa học và Công nghệ", password_file=secret)
    params = pika.URLParameters(dl_env.amqp_url)
    params.credentials = pika.PlainCredentials(code, password)
    agency = pika.BlockingConnection(params)
    try:
        ch = agency.channel()
        ch.confirm_delivery()
        # A NUL in message_id is what made the relay fail on it (issue 12, item 1).
        ch.basic_publish(
            t.submit_exchange(code),
            code,
            b'{"schema": "lienthong.document/1"}',
            pika.BasicProperties(
                message_id="poison\x00id", type=t.TYPE_DOCUMENT, user_id=code, delivery_mode=2
            ),
            mandatory=True,
        )
    finally:
        agency.close()

    taken = fail_until_gone(admin, t.outbox_queue(code))
    assert taken == LIMIT + 1
    wait_for(admin, t.FAILED_SUBMISSIONS_QUEUE, 1)  # dead-lettered, not dropped

    stop = threading.Event()
    engine = make_engine(dl_env.database_url, pool_size=1)
    worker = threading.Thread(target=FailedSubmissionsWorker(dl_env, engine).run, args=(stop,))
    worker.start()
    try:
        wait_for(admin, t.inbox_queue(code), 1)
    finally:
        stop.set()
        worker.join(30)
        engine.dispose()
    method, props, body = admin.basic_get(t.inbox_queue(code), auto_ack=True)
    assert method is not None
    receipt = json.loads(body)
    assert props.type == t.TYPE_RECEIPT
    assert (receipt["kind"], receipt["in_reply_to"]) == ("rejected", "poison\\x00id")
    assert "set aside" in receipt["reason"] and "send it again" in receipt["reason"]
    assert count(admin, t.FAILED_SUBMISSIONS_QUEUE) == 0

    engine = make_engine(dl_env.database_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                select(rejections).where(rejections.c.message_id == "poison\\x00id")
            ).one()
    finally:
        engine.dispose()
    assert row.queue == t.outbox_queue(code) and row.user_id == code


@pytest.mark.parametrize("queue", [t.RETURNED_QUEUE, t.FAILED_SUBMISSIONS_QUEUE])
def test_what_the_relay_cannot_handle_either_is_parked_not_dropped(
    admin: pika.adapters.blocking_connection.BlockingChannel, queue: str
) -> None:
    before = count(admin, t.PARKED_QUEUE)
    marker = str(uuid.uuid4())
    admin.basic_publish(
        queue,  # each hub queue has a fanout exchange of its own name
        "",
        b"{}",
        pika.BasicProperties(message_id=marker, delivery_mode=2),
        mandatory=True,
    )
    assert fail_until_gone(admin, queue) == LIMIT + 1
    wait_for(admin, t.PARKED_QUEUE, before + 1)
    seen = []
    for _ in range(count(admin, t.PARKED_QUEUE)):
        method, props, _body = admin.basic_get(t.PARKED_QUEUE, auto_ack=False)
        assert method is not None
        seen.append(props.message_id)
    admin.basic_nack(method.delivery_tag, multiple=True, requeue=True)  # parked stays parked
    assert marker in seen


def test_a_forged_death_header_never_makes_the_hub_answer_another_agency(engine: Engine) -> None:
    """``x-first-death-queue`` is a header the publisher may set itself: a dead submission whose
    headers name B's outbox but whose broker-validated ``user_id`` is A tells nobody (and never
    B), and is still kept."""
    a, b = random_code(), random_code()
    mid = f"forged-{uuid.uuid4()}"
    msg = DeadSubmission(
        message_id=mid,
        message_type=t.TYPE_DOCUMENT,
        user_id=a,
        headers={
            "x-first-death-queue": t.outbox_queue(b),
            "x-first-death-reason": "delivery_limit",
        },
        body=b"{}",
    )
    assert handle_dead_submission(engine, msg) is None
    with engine.connect() as conn:
        told = conn.execute(select(receipts.c.agency).where(receipts.c.in_reply_to == mid)).all()
        kept = conn.execute(select(rejections.c.queue).where(rejections.c.message_id == mid)).all()
    assert told == []
    assert [q for (q,) in kept] == [t.outbox_queue(b)]
