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

``--returns`` measures the storm itself instead: ``--receipts`` deliveries at their last
attempt come back together (their returns queued in ``lienthong.returned``, as RabbitMQ
dead-letters the copies an adapter rejected), and a retry worker is started; it prints the
seconds until every delivery is failed and every receipt confirmed and cleared, and the
messages in the senders' inboxes.

On the services the tests use (``LIENTHONG_TEST_AMQP_URL``, ``LIENTHONG_TEST_DATABASE_URL``,
``LIENTHONG_TEST_MANAGEMENT_URL``), in a vhost and database of its own, removed at the end.
Run against older code (``PYTHONPATH=<older tree>``) it gives the figures before.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import structlog
from cryptography.fernet import Fernet
from sqlalchemy import Engine, event, func, select, update

from relay.broker.management import ManagementClient
from relay.config import Settings
from relay.db.engine import make_engine
from relay.db.tables import deliveries, receipts
from relay.domain.outgoing import Outgoing
from relay.retry import amqp, schedule, store
from relay.retry.returns import fail_delivery
from schemas import split_receipts
from schemas import topology as t
from tests.conftest import _environments
from tests.retry_support import (
    Agency,
    add_agency,
    drain,
    publish_returns,
    retry_worker,
    submit_many,
)
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
    messages, arrived = inboxes(settings, senders)
    assert arrived == len(outs), (arrived, len(outs))
    assert still_owed(db, outs) == 0
    return {
        "path": "send_receipts",
        "group_receipts": settings.group_receipts,
        "receipts": len(outs),
        "agencies": len(senders),
        "seconds": round(seconds, 3),
        "receipts_per_second": round(len(outs) / seconds),
        "published": published[0],
        "transactions": committed[0],
        "inbox_messages": messages,
    }


def inboxes(settings: Settings, senders: list[Agency]) -> tuple[int, int]:
    """(messages, receipts they carry) drained from the senders' inboxes."""
    messages = arrived = 0
    for s in senders:
        for kind, body in drain(settings, s, timeout=30):
            messages += 1
            arrived += len(split_receipts(body)) if kind == t.TYPE_RECEIPTS else 1
    return messages, arrived


def run_returns(
    db: Engine, settings: Settings, senders: list[Agency], recipient: Agency, n: int
) -> dict[str, object]:
    # the destination is not marked down on the way: every delivery fails at its last attempt
    settings = settings.model_copy(update={"destination_down_after": 10 * n})
    per_sender = [
        submit_many(db, settings, s.code, recipient.code, n // len(senders)) for s in senders
    ]
    mids = [sent.delivery_message_id for row in zip(*per_sender, strict=True) for sent in row]
    drain(settings, recipient, timeout=30)
    with db.begin() as conn:
        conn.execute(
            update(deliveries)
            .where(deliveries.c.message_id.in_(mids))
            .values(attempts=settings.retry_max_attempts - 1)
        )
    publish_returns(settings.amqp_url, mids, recipient.code)  # rejected by its adapter

    def done() -> bool:
        with db.connect() as conn:
            failed = conn.execute(
                select(func.count()).where(
                    deliveries.c.message_id.in_(mids), deliveries.c.state == "failed"
                )
            ).scalar_one()
            owed = conn.execute(
                select(func.count())
                .select_from(receipts)
                .where(
                    receipts.c.kind == "delivery_failed",
                    receipts.c.agency.in_([s.code for s in senders]),
                    receipts.c.publish_pending_since.is_not(None),
                )
            ).scalar_one()
        return bool(failed == len(mids) and owed == 0)

    started = time.perf_counter()
    with retry_worker(settings):
        while not done():
            time.sleep(0.05)
        seconds = time.perf_counter() - started
    messages, arrived = inboxes(settings, senders)
    assert arrived == len(mids), (arrived, len(mids))
    return {
        "path": "returns",
        "group_receipts": settings.group_receipts,
        "receipts": len(mids),
        "agencies": len(senders),
        "seconds": round(seconds, 3),
        "inbox_messages": messages,
    }


def secret_key(folder: Path) -> Path:
    """A key file for the environment, as the tests' ``secret_key_file`` fixture makes."""
    path = folder / "secret.key"
    path.write_bytes(Fernet.generate_key() + b"\n")
    path.chmod(0o600)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--receipts", type=int, default=1000)
    parser.add_argument("--agencies", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2, help="runs of each setting")
    parser.add_argument(
        "--returns", action="store_true", help="returns through a retry worker instead"
    )
    args = parser.parse_args()
    # a delivery.failed warning per receipt loaded would bury the figures
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    logging.getLogger("pika").setLevel(logging.ERROR)
    with (
        tempfile.TemporaryDirectory() as tmp,
        find_services() as services,
        ManagementClient(services.management_url) as management,
        _environments(services, management, secret_key(Path(tmp))) as factory,
    ):
        base = factory()
        db = make_engine(base.database_url)
        try:
            recipient = add_agency(base, db, management)
            senders = [add_agency(base, db, management) for _ in range(args.agencies)]
            for _ in range(args.rounds):
                for grouped in (False, True):
                    settings = base.model_copy(update={"group_receipts": grouped})
                    measure = run_returns if args.returns else run
                    print(json.dumps(measure(db, settings, senders, recipient, args.receipts)))
        finally:
            db.dispose()


if __name__ == "__main__":
    main()
