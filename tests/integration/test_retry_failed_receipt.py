"""A ``delivery_failed`` receipt stored by a relay that died before publishing it still reaches
the sender, once (relay/retry/outbox.py).

Real RabbitMQ and PostgreSQL, an environment of the module's own (the passes under test look at
every receipt of the database). The crash is the store step without the publish: the failing
transaction is committed, and the publish never happens (or dies).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import pika.exceptions
import pytest
from sqlalchemy import Engine, func, select, update

from relay.blobs import expiry
from relay.broker.management import ManagementClient
from relay.config import Settings
from relay.db.engine import make_engine
from relay.db.tables import deliveries, documents, receipts
from relay.domain.outgoing import Outgoing
from relay.retry import amqp, schedule, store
from relay.retry.returns import PublishFn, fail_delivery
from tests.conftest import EnvFactory
from tests.retry_support import (
    FAST,
    Agency,
    add_agency,
    delivery_row,
    drain,
    retry_worker,
    submit,
    wait_until,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def own_env(make_env: EnvFactory) -> Settings:
    return make_env().model_copy(update=FAST)


@pytest.fixture(scope="module")
def own_db(own_env: Settings) -> Iterator[Engine]:
    eng = make_engine(own_env.database_url)
    yield eng
    eng.dispose()


@contextlib.contextmanager
def broker_publish(settings: Settings) -> Iterator[PublishFn]:
    """Publish with confirms, as the retry worker does."""
    conn = amqp.connect(settings.amqp_url, name="test relay receipts")
    try:
        channel = amqp.open_confirm_channel(conn)

        def publish(out: Outgoing) -> None:
            amqp.publish(channel, out)

        yield publish
    finally:
        conn.close()


def killed(out: Outgoing) -> None:
    """The relay's connection dies before the broker confirms (SIGKILL after the commit)."""
    raise pika.exceptions.StreamLostError("the relay was killed")


def failed_receipts(
    settings: Settings, agency: Agency, timeout: float = 1.0
) -> list[dict[str, Any]]:
    got = drain(settings, agency, timeout=timeout)
    assert all(kind == "receipt" for kind, _ in got), got
    return [json.loads(body) for _, body in got]


def pending_since(db: Engine, receipt_id: str) -> object:
    with db.connect() as conn:
        return conn.execute(
            select(receipts.c.publish_pending_since).where(receipts.c.receipt_id == receipt_id)
        ).scalar_one()


def fail_without_publishing(db: Engine, message_id: str) -> str:
    """What the retry worker does when it gives up, committed; then the relay is killed."""
    with db.begin() as conn:
        d = store.lock_delivery(conn, message_id)
        assert d is not None
        out = fail_delivery(
            conn,
            d,
            attempts=3,
            error="rejected",
            description="failed after 3 attempts: rejected",
            told=f"{d.recipient} could not be reached: rejected",
        )
    return out.message_id


def test_a_receipt_stored_by_a_relay_killed_before_publishing_reaches_the_sender_once(
    own_env: Settings, own_db: Engine, management: ManagementClient
) -> None:
    sender = add_agency(own_env, own_db, management)
    recipient = add_agency(own_env, own_db, management)
    sent = submit(own_db, own_env, sender.code, recipient.code)
    drain(own_env, recipient)  # the first copy, which nobody took
    receipt_id = fail_without_publishing(own_db, sent.delivery_message_id)
    assert delivery_row(own_db, sent.delivery_message_id)["state"] == "failed"
    assert failed_receipts(own_env, sender) == []  # stored, never sent

    # The relay starts again; the receipt has been owed for longer than the window.
    settings = own_env.model_copy(update={"receipt_republish_seconds": 0.5})
    got: list[dict[str, Any]] = []
    with retry_worker(settings):
        wait_until(
            lambda: bool(got.extend(failed_receipts(settings, sender, 0.2)) or got),
            15,
            "the stored delivery_failed receipt in the sender's inbox",
        )
        time.sleep(2.5)  # five windows, 25 ticks: none may publish it again
        got += failed_receipts(settings, sender)
    assert [(r["kind"], r["recipient"], r["receipt_id"]) for r in got] == [
        ("delivery_failed", recipient.code, receipt_id)
    ]
    assert "could not be reached" in got[0]["reason"]
    assert pending_since(own_db, receipt_id) is None


def test_a_timed_out_transfer_whose_receipt_publish_died_is_told_by_the_next_pass_once(
    own_env: Settings, own_db: Engine, management: ManagementClient
) -> None:
    sender = add_agency(own_env, own_db, management)
    recipient = add_agency(own_env, own_db, management)
    sent = submit(own_db, own_env, sender.code, recipient.code)
    drain(own_env, recipient)
    attachment = {"name": "scan.pdf", "size": 3000000, "sha256": "ab" * 32, "transfer": "chunks"}
    with own_db.begin() as conn:  # a chunked document queued an hour ago, never received
        pk = conn.execute(
            select(deliveries.c.document_pk).where(
                deliveries.c.message_id == sent.delivery_message_id
            )
        ).scalar_one()
        conn.execute(
            update(documents)
            .where(documents.c.id == pk)
            .values(payload=json.dumps({"attachments": [attachment]}).encode())
        )
        conn.execute(
            update(deliveries)
            .where(deliveries.c.message_id == sent.delivery_message_id)
            .values(updated_at=func.now() - func.make_interval(0, 0, 0, 0, 1))
        )
    timed = own_env.model_copy(update={"transfer_timeout_hours": 0.5})
    with pytest.raises(pika.exceptions.StreamLostError):
        expiry.expire_transfers(own_db, timed, killed)
    assert delivery_row(own_db, sent.delivery_message_id)["state"] == "failed"
    assert failed_receipts(own_env, sender) == []
    with own_db.connect() as conn:
        [(receipt_id, since)] = conn.execute(
            select(receipts.c.receipt_id, receipts.c.publish_pending_since).where(
                receipts.c.in_reply_to == sent.submission_id
            )
        ).all()
    assert since is not None  # stored, marked as owed

    with broker_publish(own_env) as publish:
        # Within the window the receipt is left to the relay that stored it.
        assert schedule.republish_receipts(own_db, own_env, publish) == 0
        assert failed_receipts(own_env, sender) == []
        later = own_env.model_copy(update={"receipt_republish_seconds": 0.2})
        time.sleep(0.3)
        assert schedule.republish_receipts(own_db, later, publish) == 1
        [receipt] = failed_receipts(own_env, sender)
        assert (receipt["kind"], receipt["recipient"]) == ("delivery_failed", recipient.code)
        assert receipt["receipt_id"] == receipt_id and "scan.pdf" in receipt["reason"]
        assert pending_since(own_db, receipt_id) is None
        time.sleep(0.3)
        assert schedule.republish_receipts(own_db, later, publish) == 0  # the second pass
        assert failed_receipts(own_env, sender) == []


def test_a_receipt_the_broker_confirmed_is_not_published_again(
    own_env: Settings, own_db: Engine, management: ManagementClient
) -> None:
    sender = add_agency(own_env, own_db, management)
    recipient = add_agency(own_env, own_db, management)
    sent = submit(own_db, own_env, sender.code, recipient.code)
    drain(own_env, recipient)
    with own_db.begin() as conn:
        d = store.lock_delivery(conn, sent.delivery_message_id)
        assert d is not None
        out = fail_delivery(conn, d, attempts=3, error="x", description="x", told="x")
    later = own_env.model_copy(update={"receipt_republish_seconds": 0.1})
    with broker_publish(own_env) as publish:
        schedule.send_receipts(own_db, own_env, [out], publish)
        assert len(failed_receipts(own_env, sender)) == 1
        time.sleep(0.2)
        assert schedule.republish_receipts(own_db, later, publish) == 0
    assert failed_receipts(own_env, sender) == []
