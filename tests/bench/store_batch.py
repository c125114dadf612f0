"""How long one batch's transaction takes on the database thread, without the broker.

``python -m tests.bench.store_batch [--rounds N]`` creates a database of its own on
``LIENTHONG_TEST_DATABASE_URL``'s server (migrated, 96 agencies), then times
:class:`relay.worker.transaction.BatchTransaction` as the relay's database thread runs it (a
pooled connection without a ping, one transaction, committed) for two shapes of batch: one
document to 95 recipients (a fan-out batch at half load) and 50 documents of 2 KiB to one
recipient each. It prints the median and the 90th percentile per shape, in milliseconds, and
drops the database. Round trips show here: with nothing else running, each costs a fraction of
a millisecond; on a loaded machine, a wake-up of the database thread each.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
import uuid

from sqlalchemy import insert, text

from relay.db.engine import make_engine
from relay.db.tables import agencies
from relay.domain.intake import Envelope
from relay.setup import ensure_database, migrate_database
from relay.worker.process import Inbound
from relay.worker.transaction import BatchTransaction
from schemas import Document, encode_message
from schemas import topology as t
from tests.relay_support import make_document
from tests.services import random_code


def _inbound(sender: str, doc: Document) -> Inbound:
    return Inbound(
        tag=1,
        queue=t.outbox_queue(sender),
        envelope=Envelope(
            owner=sender,
            message_id=str(uuid.uuid4()),
            user_id=sender,
            message_type=t.TYPE_DOCUMENT,
            body=encode_message(doc),
        ),
        properties=lambda: {"headers": {}},
        received=time.monotonic(),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200, help="batches of each shape")
    args = parser.parse_args()
    server = os.environ.get("LIENTHONG_TEST_DATABASE_URL")
    if not server:
        raise SystemExit("set LIENTHONG_TEST_DATABASE_URL (a PostgreSQL server to create on)")
    name = f"lienthong_store_batch_{uuid.uuid4().hex[:8]}"
    url = server.rsplit("/", 1)[0] + "/" + name
    ensure_database(url)
    engine = make_engine(url, pre_ping=False)  # as the relay's database threads
    try:
        migrate_database(engine)
        codes = [random_code() for _ in range(96)]
        with engine.begin() as conn:
            conn.execute(
                insert(agencies), [{"code": c, "name": c, "strict_code": True} for c in codes]
            )
        sender, recipients = codes[0], codes[1:]
        work = BatchTransaction(1024 * 1024, {}, threading.Lock())
        shapes = {
            "1 document to 95 recipients": lambda: [
                _inbound(sender, make_document(sender, recipients))
            ],
            "50 documents of 2 KiB": lambda: [
                _inbound(sender, make_document(sender, [recipients[0]])) for _ in range(50)
            ],
        }
        for label, make in shapes.items():
            times = []
            for n in range(args.rounds + 20):  # the first 20 warm the pool and the caches
                batch = make()
                began = time.perf_counter()
                with engine.connect() as conn, conn.begin():
                    work.run(conn, batch)
                if n >= 20:
                    times.append((time.perf_counter() - began) * 1000.0)
            times.sort()
            print(
                f"{label}: median {statistics.median(times):.2f} ms, "
                f"p90 {times[int(len(times) * 0.9)]:.2f} ms ({len(times)} batches)"
            )
    finally:
        engine.dispose()
        admin = make_engine(server, pre_ping=False)
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
