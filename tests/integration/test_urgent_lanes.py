"""Urgent lanes (issue 18): an urgent document (edXML ``Priority`` 1-4) does not wait behind a
backlog of ordinary ones, not in its sender's outbox at the relay, not in its recipient's inbox
at the adapter. Against the real broker, database, relay and adapter; the backlogs are small
(hundreds) so the tests stay quick: the 5,000-document figures come from
``python -m tests.bench.urgent`` and ``python -m tests.bench.urgent_adapter``.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from pathlib import Path

import pika
import pika.exceptions
import pytest
from sqlalchemy import Engine, func, select

from relay.broker.management import ManagementClient
from relay.config import Settings
from relay.db.tables import deliveries, documents
from schemas import topology as t
from schemas.document import Document, OtherInfo
from schemas.envelope import encode_message
from tests.adapter_support import adapter_thread, agency_url, drop, write_config
from tests.relay_support import (
    RelayProcess,
    add_agency,
    connect,
    make_document,
    publish_many,
    wait_until,
)
from tests.services import random_code

pytestmark = pytest.mark.integration

#: Ordinary documents queued ahead of the urgent one (more than one relay batch of 500).
BACKLOG = 600


def urgent_document(sender: str, recipient: str, priority: int = 1) -> Document:
    doc = make_document(
        sender, [recipient], document_id=f"{sender},2026/11/30,{uuid.uuid4().hex[:6]}/KHAN"
    )
    doc.other_info = OtherInfo(priority=priority)
    return doc


def depth(settings: Settings, queue: str) -> int:
    conn = connect(settings.amqp_url)
    try:
        return int(conn.channel().queue_declare(queue, passive=True).method.message_count)
    finally:
        conn.close()


def test_the_relay_takes_an_urgent_document_before_the_ordinary_backlog_queued_ahead_of_it(
    relay_env: Settings, db: Engine
) -> None:
    a = add_agency(relay_env, db, random_code())
    b = add_agency(relay_env, db, random_code())
    publish_many(a, [make_document(a.code, [b.code]) for _ in range(BACKLOG)])
    urgent = urgent_document(a.code, b.code)
    assert a.amqp_url is not None
    conn = connect(a.amqp_url)  # as A's adapter publishes an urgent document: its urgent lane
    ch = conn.channel()
    ch.confirm_delivery()
    ch.basic_publish(
        t.submit_exchange(a.code, urgent=True),
        "",
        encode_message(urgent),
        pika.BasicProperties(
            message_id=str(uuid.uuid4()),
            type=t.TYPE_DOCUMENT,
            user_id=a.code,
            delivery_mode=2,
            content_type=t.CONTENT_TYPE,
        ),
        mandatory=True,
    )
    conn.close()
    assert depth(relay_env, t.outbox_queue(a.code, urgent=True)) == 1

    with RelayProcess(relay_env):

        def stored() -> int:
            with db.connect() as c:
                return int(
                    c.execute(
                        select(func.count())
                        .select_from(deliveries)
                        .where(deliveries.c.route_to == b.code, deliveries.c.state == "queued")
                    ).scalar_one()
                )

        wait_until(lambda: stored() == BACKLOG + 1, timeout=120, interval=0.2)

    # The relay stores a batch's deliveries in the order it took the messages: the urgent
    # document was taken in the first batch (500), not after the 600 queued ahead of it.
    with db.connect() as c:
        order = c.execute(
            select(documents.c.document_id)
            .join(deliveries, deliveries.c.document_pk == documents.c.id)
            .where(deliveries.c.route_to == b.code)
            .order_by(deliveries.c.id)
        ).scalars()
        position = list(order).index(urgent.document_id) + 1
    assert position <= relay_env.batch_size, f"urgent document taken {position} of {BACKLOG + 1}"

    # Its copy is in B's urgent inbox, which B (and only B's user) reads; the rest in the other.
    assert depth(relay_env, t.inbox_queue(b.code)) == BACKLOG
    assert b.amqp_url is not None
    conn = connect(b.amqp_url)
    try:
        method, props, body = conn.channel().basic_get(
            t.inbox_queue(b.code, urgent=True), auto_ack=True
        )
    finally:
        conn.close()
    assert method is not None, "no copy in B's urgent inbox"
    assert props.type == t.TYPE_DOCUMENT
    assert json.loads(body)["document_id"] == urgent.document_id
    assert props.headers[t.HEADER_RECIPIENT] == b.code


def _recorded(spool: Path) -> list[str]:
    """Message ids in B's received-item store, in the order the adapter recorded them."""
    if not spool.exists():
        return []
    db = sqlite3.connect(f"file:{spool}?mode=ro", uri=True, timeout=10)
    try:
        return [r[0] for r in db.execute("SELECT message_id FROM received_items ORDER BY seq")]
    except sqlite3.OperationalError:  # tables not created yet
        return []
    finally:
        db.close()


def test_an_adapter_records_an_urgent_copy_before_the_ordinary_backlog_in_its_inbox(
    relay_env: Settings, db: Engine, tmp_path: Path
) -> None:
    b = add_agency(relay_env, db, random_code())
    sender = random_code()
    conn = connect(relay_env.amqp_url)  # the relay's side, by hand
    ch = conn.channel()
    ch.confirm_delivery()

    def deliver(doc: Document, urgent: bool) -> str:
        mid = str(uuid.uuid4())
        ch.basic_publish(
            t.DELIVER_EXCHANGE,
            t.deliver_routing_key(b.code, urgent=urgent),
            encode_message(doc),
            pika.BasicProperties(
                message_id=mid,
                type=t.TYPE_DOCUMENT,
                delivery_mode=2,
                content_type=t.CONTENT_TYPE,
                headers={t.HEADER_RECIPIENT: b.code},
            ),
            mandatory=True,
        )
        return mid

    ordinary = make_document(sender, [b.code])
    for _ in range(BACKLOG):
        deliver(ordinary, urgent=False)
    urgent_mid = deliver(urgent_document(sender, b.code, priority=3), urgent=True)
    conn.close()

    assert b.password is not None
    config = write_config(tmp_path / "b", b.code, agency_url(relay_env), b.password)
    with adapter_thread(config) as adapter:
        spool = adapter.config.spool_path
        wait_until(lambda: len(_recorded(spool)) == BACKLOG + 1, timeout=120, interval=0.2)
        order = _recorded(spool)
    position = order.index(urgent_mid) + 1
    # Recorded in the first round, before all but at most one prefetch of ordinary copies.
    assert position <= adapter.config.prefetch + 1, f"recorded {position} of {BACKLOG + 1}"


def test_an_adapter_publishes_an_urgent_document_to_its_urgent_lane_and_others_as_before(
    relay_env: Settings, db: Engine, tmp_path: Path
) -> None:
    a = add_agency(relay_env, db, random_code())
    recipient = random_code()
    assert a.password is not None
    config = write_config(tmp_path / "a", a.code, agency_url(relay_env), a.password)
    root = tmp_path / "a" / "root"
    drop(root / "outbox", "thuong.json", encode_message(make_document(a.code, [recipient])))
    drop(root / "outbox", "hoa-toc.json", encode_message(urgent_document(a.code, recipient, 3)))
    status_like = make_document(a.code, [recipient])
    status_like.other_info = OtherInfo(priority=0)  # 0: ordinary
    drop(root / "outbox", "binh-thuong.json", encode_message(status_like))
    with adapter_thread(config):
        wait_until(
            lambda: (
                depth(relay_env, t.outbox_queue(a.code)) == 2
                and depth(relay_env, t.outbox_queue(a.code, urgent=True)) == 1
            ),
            timeout=30,
            interval=0.2,
        )
    conn = connect(relay_env.amqp_url)
    try:
        _m, props, body = conn.channel().basic_get(
            t.outbox_queue(a.code, urgent=True), auto_ack=True
        )
    finally:
        conn.close()
    assert json.loads(body)["other_info"]["priority"] == 3
    assert props.user_id == a.code


@pytest.mark.parametrize("deleted", ["urgent", "ordinary"])
def test_an_outbox_deleted_under_the_relay_brings_both_lanes_back_at_the_next_poll(
    relay_env: Settings, db: Engine, deleted: str
) -> None:
    a = add_agency(relay_env, db, random_code())
    b = add_agency(relay_env, db, random_code())
    with RelayProcess(relay_env) as relay:
        relay.wait_consuming([a.code, b.code])
        with ManagementClient(relay_env.management_url) as mgmt:
            mgmt.delete_queue(relay_env.vhost, t.outbox_queue(a.code, urgent=deleted == "urgent"))
        # The broker cancels the consumer of the deleted queue (relay.outbox_cancelled); or, if
        # a consumer restart (intake regrowing its prefetch over what earlier tests left in this
        # vhost) asked for the queue just as it went, the broker closes the channel (404) and the
        # relay reconnects, declaring both lanes again (relay.connection_abandoned): seen once
        # in a CI rehearsal. Either way the lanes must come back.
        since = _first_of(relay, (b'"relay.outbox_cancelled"', b'"relay.connection_abandoned"'))
        # consumed again after that: the next poll may already have come (22 ms later in one
        # CI run), so look from there on, not from what the log held when we looked
        relay.wait_for_log('"relay.outbox_consumed"', timeout=20, since=since)
        urgent = urgent_document(a.code, b.code)
        assert a.amqp_url is not None

        def submitted() -> bool:  # the urgent lane is declared (and bound) again
            conn = connect(a.amqp_url or "")
            try:
                ch = conn.channel()
                ch.confirm_delivery()
                ch.basic_publish(
                    t.submit_exchange(a.code, urgent=True),
                    "",
                    encode_message(urgent),
                    pika.BasicProperties(
                        message_id=str(uuid.uuid4()),
                        type=t.TYPE_DOCUMENT,
                        user_id=a.code,
                        delivery_mode=2,
                    ),
                    mandatory=True,
                )
                return True
            except pika.exceptions.UnroutableError:
                return False
            finally:
                conn.close()

        wait_until(submitted, timeout=30, interval=0.5)
        # Taken by the relay: the copy reaches B's urgent inbox.
        wait_until(
            lambda: depth(relay_env, t.inbox_queue(b.code, urgent=True)) >= 1,
            timeout=30,
            interval=0.2,
        )


def _first_of(relay: RelayProcess, needles: tuple[bytes, ...], timeout: float = 20.0) -> int:
    """Where the first of ``needles`` to appear is in the relay's log (waits for one)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = relay.log_path.read_bytes()
        found = [log.index(n) for n in needles if n in log]
        if found:
            return min(found)
        time.sleep(0.05)
    raise AssertionError(f"relay logged none of {needles} in {timeout}s:\n{relay.log_text()}")
