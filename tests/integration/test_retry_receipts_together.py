"""Owed receipts the retry schedule publishes outside the worker's batches go grouped, one
``lienthong.receipts/1`` message per agency, like a batch's (relay/retry/schedule.py).

Real RabbitMQ and PostgreSQL, an environment of the module's own. The receipts are
``delivery_failed`` receipts stored marked as owed, as the retry worker stores them when
deliveries fail after their last attempt.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import pika
import pika.exceptions
import pytest
from sqlalchemy import Engine, func, insert, select, update

from relay.broker.management import ManagementClient
from relay.config import Settings
from relay.db.engine import make_engine
from relay.db.tables import agencies, bounces, deliveries, documents, receipts
from relay.domain.outgoing import Outgoing, delivery_message_id
from relay.retry import amqp, schedule, store
from relay.retry.returns import PublishFn, fail_delivery
from schemas import topology as t
from tests.conftest import EnvFactory
from tests.retry_support import (
    FAST,
    Agency,
    add_agency,
    delivery_row,
    drain,
    inbox_receipts,
    publish_returns,
    retry_worker,
    submit_many,
    wait_until,
)
from tests.services import random_code

pytestmark = pytest.mark.integration

N = 7


@pytest.fixture(scope="module")
def own_env(make_env: EnvFactory) -> Settings:
    return make_env().model_copy(update=FAST)


@pytest.fixture(scope="module")
def own_db(own_env: Settings) -> Iterator[Engine]:
    eng = make_engine(own_env.database_url)
    yield eng
    eng.dispose()


@contextlib.contextmanager
def counted_publish(settings: Settings) -> Iterator[tuple[PublishFn, list[Outgoing]]]:
    """Publish with confirms, as the retry worker does, and keep what was published."""
    conn = amqp.connect(settings.amqp_url, name="test relay receipts together")
    published: list[Outgoing] = []
    try:
        channel = amqp.open_confirm_channel(conn)

        def publish(out: Outgoing) -> None:
            published.append(out)
            amqp.publish(channel, out)

        yield publish, published
    finally:
        conn.close()


def owed_receipts(
    db: Engine, settings: Settings, sender: str, recipient: str, n: int
) -> list[Outgoing]:
    """``n`` deliveries from ``sender`` failed after their last attempt, committed: their
    ``delivery_failed`` receipts stored, marked as owed, not yet published."""
    sent = submit_many(db, settings, sender, recipient, n)
    outs = []
    with db.begin() as conn:
        for s in sent:
            d = store.lock_delivery(conn, s.delivery_message_id)
            assert d is not None
            outs.append(fail_delivery(conn, d, attempts=3, error="x", description="x", told="gone"))
    return outs


def still_owed(db: Engine, outs: list[Outgoing]) -> list[str]:
    with db.connect() as conn:
        return list(
            conn.execute(
                select(receipts.c.receipt_id).where(
                    receipts.c.receipt_id.in_([o.message_id for o in outs]),
                    receipts.c.publish_pending_since.is_not(None),
                )
            ).scalars()
        )


def inbox(settings: Settings, agency: Agency) -> list[tuple[str, list[str]]]:
    """(message type, receipt ids it carries) of each message in ``agency``'s inbox."""
    return [
        (kind, [str(r.receipt_id) for r in found])
        for kind, found in inbox_receipts(settings, agency)
    ]


def test_owed_receipts_to_one_agency_go_as_one_message_and_are_all_marked_published(
    own_env: Settings, own_db: Engine, management: ManagementClient
) -> None:
    sender = add_agency(own_env, own_db, management)
    recipient = add_agency(own_env, own_db, management)
    outs = owed_receipts(own_db, own_env, sender.code, recipient.code, N)
    drain(own_env, recipient)  # the copies nobody took
    assert len(still_owed(own_db, outs)) == N

    with counted_publish(own_env) as (publish, published):
        schedule.send_receipts(own_db, own_env, outs, publish)

    assert [o.message_type for o in published] == [t.TYPE_RECEIPTS]
    assert inbox(own_env, sender) == [(t.TYPE_RECEIPTS, [o.message_id for o in outs])]
    assert still_owed(own_db, outs) == []


def test_with_group_receipts_off_each_owed_receipt_goes_alone(
    own_env: Settings, own_db: Engine, management: ManagementClient
) -> None:
    settings = own_env.model_copy(update={"group_receipts": False})
    sender = add_agency(settings, own_db, management)
    recipient = add_agency(settings, own_db, management)
    outs = owed_receipts(own_db, settings, sender.code, recipient.code, N)
    drain(settings, recipient)

    with counted_publish(settings) as (publish, published):
        schedule.send_receipts(own_db, settings, outs, publish)

    assert len(published) == N
    assert inbox(settings, sender) == [(t.TYPE_RECEIPT, [o.message_id]) for o in outs]
    assert still_owed(own_db, outs) == []


def test_receipts_to_several_agencies_go_as_one_message_each_a_lone_one_as_it_is(
    own_env: Settings, own_db: Engine, management: ManagementClient
) -> None:
    recipient = add_agency(own_env, own_db, management)
    a, b, c = (add_agency(own_env, own_db, management) for _ in range(3))
    to_a = owed_receipts(own_db, own_env, a.code, recipient.code, 3)
    to_b = owed_receipts(own_db, own_env, b.code, recipient.code, 4)
    to_c = owed_receipts(own_db, own_env, c.code, recipient.code, 1)
    drain(own_env, recipient)
    mixed = [to_a[0], to_b[0], to_c[0], to_a[1], to_b[1], to_b[2], to_a[2], to_b[3]]

    with counted_publish(own_env) as (publish, published):
        schedule.send_receipts(own_db, own_env, mixed, publish)

    assert len(published) == 3
    assert inbox(own_env, a) == [(t.TYPE_RECEIPTS, [o.message_id for o in to_a])]
    assert inbox(own_env, b) == [(t.TYPE_RECEIPTS, [o.message_id for o in to_b])]
    assert inbox(own_env, c) == [(t.TYPE_RECEIPT, [to_c[0].message_id])]
    assert still_owed(own_db, mixed) == []


def test_a_group_no_inbox_takes_is_kept_receipt_by_receipt_in_the_bounce_schedule(
    own_env: Settings, own_db: Engine, management: ManagementClient
) -> None:
    gone = random_code()  # in the directory, but its inbox does not exist
    with own_db.begin() as conn:
        conn.execute(insert(agencies).values(code=gone, name=f"Test {gone}", strict_code=True))
    recipient = add_agency(own_env, own_db, management)
    outs = owed_receipts(own_db, own_env, gone, recipient.code, N)
    drain(own_env, recipient)

    with counted_publish(own_env) as (publish, published):
        schedule.send_receipts(own_db, own_env, outs, publish)

    # the group, then each receipt alone through the existing path
    assert [o.message_type for o in published] == [t.TYPE_RECEIPTS] + [t.TYPE_RECEIPT] * N
    with own_db.connect() as conn:
        kept = conn.execute(
            select(bounces.c.message_id, bounces.c.message_type, bounces.c.state).where(
                bounces.c.route_to == gone
            )
        ).all()
    assert sorted(kept) == sorted((o.message_id, t.TYPE_RECEIPT, "retrying") for o in outs)
    assert still_owed(own_db, outs) == []  # the bounce schedule has them


def due_last_attempts(db: Engine, settings: Settings, sender: str, n: int) -> list[str]:
    """``n`` deliveries from ``sender`` to an agency without an inbox, each at its last
    attempt and due now; their message ids."""
    gone = random_code()  # no queue is bound for it: publishes are returned as unroutable
    mids = []
    with db.begin() as conn:
        for _ in range(n):
            submission_id = str(uuid.uuid4())
            mid = delivery_message_id(submission_id, gone, by=sender)
            pk = conn.execute(
                insert(documents)
                .values(
                    message_id=submission_id,
                    document_id=f"{sender},2026/11/24,{uuid.uuid4().hex[:8]}/X",
                    business_type=0,
                    sender=sender,
                    submitted_by=sender,
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
                    attempts=settings.retry_max_attempts - 1,
                    next_attempt_at=func.now(),
                )
            )
            mids.append(mid)
    return mids


@pytest.fixture
def pass_env(make_env: EnvFactory) -> Iterator[tuple[Settings, Engine]]:
    """An environment of the test's own: a pass of the schedule claims whatever is due (the
    bounces the other tests leave behind too). The destination is never marked down on the
    way: every delivery fails at its last attempt."""
    settings = make_env().model_copy(update={**FAST, "destination_down_after": 100})
    eng = make_engine(settings.database_url)
    yield settings, eng
    eng.dispose()


def test_the_failed_receipts_of_one_pass_of_the_schedule_go_together(
    pass_env: tuple[Settings, Engine], management: ManagementClient
) -> None:
    settings, own_db = pass_env
    sender = add_agency(settings, own_db, management)
    mids = due_last_attempts(own_db, settings, sender.code, N)

    with counted_publish(settings) as (publish, published):
        assert schedule.publish_due(own_db, settings, publish) == N

    assert [delivery_row(own_db, mid)["state"] for mid in mids] == ["failed"] * N
    assert [o.message_type for o in published] == [t.TYPE_DOCUMENT] * N + [t.TYPE_RECEIPTS]
    [(kind, ids)] = inbox(settings, sender)
    assert kind == t.TYPE_RECEIPTS and len(ids) == N
    with own_db.connect() as conn:
        kinds = conn.execute(
            select(receipts.c.kind, receipts.c.publish_pending_since).where(
                receipts.c.receipt_id.in_(ids)
            )
        ).all()
    assert kinds == [("delivery_failed", None)] * N


def test_the_failed_receipts_of_returns_that_come_back_together_go_together(
    pass_env: tuple[Settings, Engine], management: ManagementClient
) -> None:
    settings, own_db = pass_env
    sender = add_agency(settings, own_db, management)
    recipient = add_agency(settings, own_db, management)
    sent = submit_many(own_db, settings, sender.code, recipient.code, N)
    mids = [s.delivery_message_id for s in sent]
    with own_db.begin() as conn:  # each copy out for its last attempt
        conn.execute(
            update(deliveries)
            .where(deliveries.c.message_id.in_(mids))
            .values(attempts=settings.retry_max_attempts - 1)
        )
    # The recipient's adapter rejected them all: RabbitMQ dead-lettered them to the relay.
    publish_returns(settings.amqp_url, mids, recipient.code)

    got: list[tuple[str, list[str]]] = []
    with retry_worker(settings):
        wait_until(
            lambda: bool(got.extend(inbox(settings, sender))) or sum(len(i) for _, i in got) >= N,
            15,
            "the delivery_failed receipts in the sender's inbox",
        )
    assert [delivery_row(own_db, mid)["state"] for mid in mids] == ["failed"] * N
    # All N were handed over in one go (prefetch 50): one message, unless the broker's frames
    # were read in two parts.
    assert len(got) < N and got[0][0] == t.TYPE_RECEIPTS, got
    assert sum(len(ids) for _, ids in got) == N
    with own_db.connect() as c:
        owed = c.execute(
            select(receipts.c.receipt_id).where(
                receipts.c.in_reply_to.in_([s.submission_id for s in sent]),
                receipts.c.publish_pending_since.is_not(None),
            )
        ).all()
    assert owed == []


def test_receipts_of_a_call_that_died_before_clearing_their_marks_are_republished_grouped(
    own_env: Settings, own_db: Engine, management: ManagementClient
) -> None:
    recipient = add_agency(own_env, own_db, management)
    a, b = add_agency(own_env, own_db, management), add_agency(own_env, own_db, management)
    to_a = owed_receipts(own_db, own_env, a.code, recipient.code, 3)
    to_b = owed_receipts(own_db, own_env, b.code, recipient.code, 2)
    drain(own_env, recipient)

    with counted_publish(own_env) as (publish, published):

        def killed_on_the_second(out: Outgoing) -> None:
            if published:
                raise pika.exceptions.StreamLostError("the relay was killed")
            publish(out)

        with pytest.raises(pika.exceptions.StreamLostError):
            schedule.send_receipts(own_db, own_env, to_a + to_b, killed_on_the_second)
    assert inbox(own_env, a) == [(t.TYPE_RECEIPTS, [o.message_id for o in to_a])]
    assert sorted(still_owed(own_db, to_a + to_b)) == sorted(o.message_id for o in to_a + to_b)

    later = own_env.model_copy(update={"receipt_republish_seconds": 0.0})
    with counted_publish(later) as (publish, published):
        assert schedule.republish_receipts(own_db, later, publish) == 5
    # the same receipt ids again, each agency's together: the adapter records each once
    for agency, outs in ((a, to_a), (b, to_b)):
        [(kind, ids)] = inbox(later, agency)
        assert kind == t.TYPE_RECEIPTS and sorted(ids) == sorted(o.message_id for o in outs)
    assert still_owed(own_db, to_a + to_b) == []
