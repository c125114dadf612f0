"""``python -m tests.bench.owed_receipts``: owed receipts published by the retry schedule.

A failure storm (a recipient down for a day, thousands of deliveries failing together) leaves
thousands of ``delivery_failed`` receipts stored marked as owed; the retry schedule publishes
them with :func:`relay.retry.schedule.send_receipts` (also after a crash, through
``republish_receipts``). This loads ``--receipts`` owed receipts from ``--agencies`` senders
(their deliveries failed, committed, the receipts not yet published), then times one
``send_receipts`` call over all of them with confirms as the retry worker publishes, with
``LIENTHONG_GROUP_RECEIPTS`` on and off, and prints the seconds, the messages published (one
synchronous confirm each), the transactions committed, and what the senders' inboxes hold.
It checks that every receipt arrived and that none is still marked as owed.

On the services the tests use (``LIENTHONG_TEST_AMQP_URL``, ``LIENTHONG_TEST_DATABASE_URL``,
``LIENTHONG_TEST_MANAGEMENT_URL``), in a vhost and database of its own, removed at the end.
Run against older code (``PYTHONPATH=<older tree>``) it gives the figures before.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import structlog
from sqlalchemy import Engine, event, select

from relay.broker.management import ManagementClient
from relay.config import Settings
from relay.db.engine import make_engine
from relay.db.tables import receipts
from relay.domain.outgoing import Outgoing
from relay.retry import amqp, schedule, store
from relay.retry.returns import fail_delivery
from schemas import split_receipts
from schemas import topology as t
from tests.conftest import _environments
from tests.retry_support import Agency, add_agency, drain, submit_many
from tests.services import find_services


def owed(
    db: Engine, settings: Settings, senders: list[Agency], recipient: Agency, n: int
) -> list[Outgoing]:
    """``n`` owed receipts, spread over ``senders`` in turn (as failures come, interleaved)."""
    per_sender = [
        submit_many(db, settings, s.code, recipient.code, n // len(senders)) for s in senders
    ]
    outs: list[Outgoing] = []
    with db.begin() as conn:
        for row in zip(*per_sender, strict=True):
            for sent in row:
                d = store.lock_delivery(conn, sent.delivery_message_id)
                assert d is not None
                outs.append(
                    fail_delivery(conn, d, attempts=8, error="x", description="x", told="gone")
                )
    drain(settings, recipient, timeout=30)  # the copies nobody took
    return outs


def still_owed(db: Engine, outs: list[Outgoing]) -> int:
    with db.connect() as conn:
        return len(
            conn.execute(
                select(receipts.c.receipt_id).where(
                    receipts.c.receipt_id.in_([o.message_id for o in outs]),
                    receipts.c.publish_pending_since.is_not(None),
                )
            ).all()
        )


@contextlib.contextmanager
def commits(db: Engine) -> Iterator[list[int]]:
    counted = [0]

    def on_commit(_conn: Any) -> None:
        counted[0] += 1

    event.listen(db, "commit", on_commit)
    try:
        yield counted
    finally:
        event.remove(db, "commit", on_commit)


def run(
    db: Engine, settings: Settings, senders: list[Agency], recipient: Agency, n: int
) -> dict[str, object]:
    outs = owed(db, settings, senders, recipient, n)
    conn = amqp.connect(settings.amqp_url, name="bench owed receipts")
    published = [0]
    try:
        channel = amqp.open_confirm_channel(conn)

        def publish(out: Outgoing) -> None:
            published[0] += 1
            amqp.publish(channel, out)

        with commits(db) as committed:
            started = time.perf_counter()
            schedule.send_receipts(db, settings, outs, publish)
            seconds = time.perf_counter() - started
    finally:
        conn.close()
    messages = arrived = 0
    for s in senders:
        for kind, body in drain(settings, s, timeout=30):
            messages += 1
            arrived += len(split_receipts(body)) if kind == t.TYPE_RECEIPTS else 1
    assert arrived == len(outs), (arrived, len(outs))
    assert still_owed(db, outs) == 0
    return {
        "group_receipts": settings.group_receipts,
        "receipts": len(outs),
        "agencies": len(senders),
        "seconds": round(seconds, 3),
        "receipts_per_second": round(len(outs) / seconds),
        "published": published[0],
        "transactions": committed[0],
        "inbox_messages": messages,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--receipts", type=int, default=1000)
    parser.add_argument("--agencies", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2, help="runs of each setting")
    args = parser.parse_args()
    # a delivery.failed warning per receipt loaded would bury the figures
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    logging.getLogger("pika").setLevel(logging.ERROR)
    with (
        find_services() as services,
        ManagementClient(services.management_url) as management,
        _environments(services, management) as factory,
    ):
        base = factory()
        db = make_engine(base.database_url)
        try:
            recipient = add_agency(base, db, management)
            senders = [add_agency(base, db, management) for _ in range(args.agencies)]
            for _ in range(args.rounds):
                for grouped in (False, True):
                    settings = base.model_copy(update={"group_receipts": grouped})
                    print(json.dumps(run(db, settings, senders, recipient, args.receipts)))
        finally:
            db.dispose()


if __name__ == "__main__":
    main()
