"""Issue 12 items 5, 6 and 11 through a running relay: what comes back is retried, a missing
inbox fails visibly, and one broken outbox never stops the others."""

from __future__ import annotations

import json
import time

import pika
import pika.exceptions
import pytest
from sqlalchemy import Engine, insert, select

from relay.broker.management import ManagementClient
from relay.config import Settings
from relay.db.tables import agencies, deliveries, documents
from relay.queries.failures import load_failures
from schemas import topology as t
from tests.relay_support import (
    Agency,
    RelayProcess,
    add_agency,
    agency_channel,
    connect,
    drain,
    make_document,
    make_status,
    publish,
    wait_until,
)
from tests.services import random_code

pytestmark = pytest.mark.integration

#: Quick retries so that a delivery fails within seconds.
RELAY_SETTINGS = {
    "retry_base_seconds": 0.2,
    "retry_max_seconds": 1.0,
    "retry_max_attempts": 3,
    "retry_tick_seconds": 0.1,
    "destination_down_after": 100,
}


def _agencies(relay_env: Settings, db: Engine, relay: RelayProcess, n: int) -> list[Agency]:
    found = [add_agency(relay_env, db, random_code()) for _ in range(n)]
    relay.wait_consuming([a.code for a in found])
    return found


def _delivery_state(db: Engine, submission: str, recipient: str) -> str | None:
    with db.connect() as conn:
        state: str | None = conn.execute(
            select(deliveries.c.state)
            .join(documents, documents.c.id == deliveries.c.document_pk)
            .where(documents.c.message_id == submission, deliveries.c.recipient == recipient)
        ).scalar_one_or_none()
    return state


# -- item 6: a missing inbox ---------------------------------------------------------------


def test_a_delivery_to_a_missing_inbox_is_retried_then_failed_and_the_sender_told(
    relay_env: Settings, db: Engine, relay: RelayProcess
) -> None:
    a, b = _agencies(relay_env, db, relay, 2)
    with ManagementClient(relay_env.management_url) as mgmt:
        mgmt.delete_queue(relay_env.vhost, t.inbox_queue(b.code))
    mid = publish(a, make_document(a.code, [b.code]))

    wait_until(lambda: _delivery_state(db, mid, b.code) == "failed", timeout=60)

    receipts = [json.loads(m.body) for m in drain(a, expect=2, timeout=20)]
    assert sorted(r["kind"] for r in receipts) == ["accepted", "delivery_failed"], receipts
    with db.connect() as conn:
        failing = load_failures(conn)
    assert any(f.submission_id == mid and f.state == "failed" for f in failing.deliveries)


# -- item 5: a status that comes back is retried -------------------------------------------


def test_a_forwarded_status_the_adapter_cannot_store_is_sent_again(
    relay_env: Settings, db: Engine, relay: RelayProcess
) -> None:
    a, b = _agencies(relay_env, db, relay, 2)
    doc = make_document(a.code, [b.code])
    publish(a, doc)
    drain(b, expect=1)
    drain(a, expect=1)
    publish(b, make_status(b.code, a.code, doc.document_id, "01"))

    # A's adapter cannot store the status: it rejects it without requeue (dead-lettered)
    assert a.amqp_url is not None
    seen: list[str | None] = []
    conn = connect(a.amqp_url)
    try:
        ch = conn.channel()
        deadline = time.monotonic() + 60
        for method, props, _body in ch.consume(t.inbox_queue(a.code), inactivity_timeout=0.2):
            if method is not None:
                if props.type == t.TYPE_STATUS:
                    seen.append(props.message_id)
                    if len(seen) == 1:
                        ch.basic_reject(method.delivery_tag, requeue=False)
                        continue
                ch.basic_ack(method.delivery_tag)
                if len(seen) >= 2:
                    break
            if time.monotonic() > deadline:
                break
        ch.cancel()
    finally:
        conn.close()

    assert len(seen) == 2 and seen[0] == seen[1], seen  # the same status, once more


# -- item 11: one broken outbox, and an outbox deleted under the relay ---------------------


def test_an_outbox_declared_with_other_arguments_is_skipped_and_the_others_flow(
    relay_env: Settings, db: Engine, relay: RelayProcess
) -> None:
    odd = random_code()
    with ManagementClient(relay_env.management_url) as mgmt:
        mgmt.put_queue(relay_env.vhost, t.outbox_queue(odd), {})  # a classic queue
    with db.begin() as conn:
        conn.execute(insert(agencies).values(code=odd, name="Odd", strict_code=True))
    relay.wait_for_log('"relay.outbox_skipped"', timeout=20)

    a, b = _agencies(relay_env, db, relay, 2)
    publish(a, make_document(a.code, [b.code]))

    assert len(drain(b, expect=1, timeout=20)) == 1
    assert relay.running()


def test_an_outbox_deleted_under_the_relay_is_consumed_again_when_it_is_back(
    relay_env: Settings, db: Engine, relay: RelayProcess
) -> None:
    a, b = _agencies(relay_env, db, relay, 2)
    with ManagementClient(relay_env.management_url) as mgmt:
        mgmt.delete_queue(relay_env.vhost, t.outbox_queue(a.code))
    relay.wait_for_log('"relay.outbox_cancelled"', timeout=20)

    def submitted() -> bool:
        try:
            with agency_channel(a) as ch:
                ch.basic_publish(
                    t.submit_exchange(a.code),
                    "",
                    json.dumps(
                        json.loads(make_document(a.code, [b.code]).model_dump_json(by_alias=True))
                    ).encode(),
                    properties=pika.BasicProperties(
                        message_id=f"again-{time.monotonic_ns()}",
                        type=t.TYPE_DOCUMENT,
                        user_id=a.code,
                        delivery_mode=2,
                    ),
                    mandatory=True,
                )
            return True
        except pika.exceptions.UnroutableError:
            return False  # not declared again yet

    wait_until(submitted, timeout=30, interval=0.5)
    assert len(drain(b, expect=1, timeout=20)) == 1
