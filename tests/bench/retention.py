"""``python -m tests.bench.retention``: retention over 100,000 documents (issue 18).

Runs on a PostgreSQL cluster of its own (``pg_createcluster``, port ``--port``, removed at the
end; the shared one is not loaded with hundreds of megabytes), migrated as ``relay setup``
does. It loads ``--documents`` documents with ``--payload-bytes`` of base64 text each (what an
attachment is on the wire) and two deliveries each:

- 80 % received ``--days`` + 10 days ago, 20 % yesterday;
- 90 % of the documents have only deliveries the hub no longer needs (completed, refused,
  accepted, recalled…); 10 % have one that still needs the payload (pending, queued,
  retrying, failed, recall_requested, 2 % each).

Then it runs retention as the relay does (batches of ``--batch-size`` ids, one transaction
each), first stopped after a third of the batches and resumed from the checkpoint, and reports
the time, batches, payloads removed and their stored bytes, the slowest batch, the table's size
before, after a plain VACUUM (space reusable by PostgreSQL) and after VACUUM FULL (returned to
the file system), and checks that no payload a delivery still needs was removed and that every
removable one was.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import io
import json
import os
import random
import time
import uuid
from typing import Any

from sqlalchemy import Engine, text

from relay.config import Settings
from relay.db import migrate
from relay.db.engine import make_engine
from relay.retention.job import NEEDS_PAYLOAD, run_retention
from tests.ops_private_services import PostgresCluster

FINAL = ("completed", "refused", "accepted", "delivered", "recalled", "processing")


def _copy(engine: Engine, table: str, columns: str, rows: io.StringIO) -> None:
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:  # type: ignore[attr-defined]
            while chunk := rows.read(1 << 20):
                copy.write(chunk)
        raw.commit()
    finally:
        raw.close()


def load(engine: Engine, documents: int, payload_bytes: int, days: int) -> dict[str, int]:
    rng = random.Random(18)
    now = dt.datetime.now(dt.UTC)
    old = now - dt.timedelta(days=days + 10)
    new = now - dt.timedelta(days=1)
    docs, dels = io.StringIO(), io.StringIO()
    expected = {"removable": 0, "needed": 0, "recent": 0}
    raw_len = payload_bytes * 3 // 4
    for pk in range(1, documents + 1):
        payload = base64.b64encode(rng.randbytes(raw_len)).decode()
        is_old = rng.random() < 0.8
        needs = rng.random() < 0.10
        received = old if is_old else new
        docs.write(
            f"{pk}\t{uuid.uuid4()}\t000.00.00.G22,2026/01/01,{pk}/VP\t0\t000.00.00.G22\t"
            f"000.00.00.G22\t\\\\x{payload.encode().hex()}\t{received.isoformat()}\n"
        )
        states = [rng.choice(FINAL), rng.choice(NEEDS_PAYLOAD) if needs else rng.choice(FINAL)]
        recalled = "recalled" in states
        for i, state in enumerate(states):
            dels.write(
                f"{pk}\t000.00.0{i}.H26\t000.00.00.H26\t{uuid.uuid4()}\t{state}\t"
                f"{received.isoformat()}\n"
            )
        if needs:
            expected["needed"] += 1
        elif is_old or recalled:
            expected["removable"] += 1
        else:
            expected["recent"] += 1
    docs.seek(0)
    dels.seek(0)
    _copy(
        engine,
        "documents",
        "id, message_id, document_id, business_type, sender, submitted_by, payload, received_at",
        docs,
    )
    _copy(
        engine,
        "deliveries",
        "document_pk, recipient, route_to, message_id, state, created_at",
        dels,
    )
    with engine.begin() as conn:
        conn.execute(text("SELECT setval('documents_id_seq', :n)"), {"n": documents})
    return expected


def table_bytes(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_total_relation_size('documents')")).scalar_one())


def vacuum(engine: Engine, full: bool) -> float:
    t0 = time.monotonic()
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.execute(text("VACUUM (FULL) documents" if full else "VACUUM documents"))
    return time.monotonic() - t0


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="python -m tests.bench.retention", description=__doc__)
    p.add_argument("--documents", type=int, default=100_000)
    p.add_argument("--payload-bytes", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--days", type=int, default=90)
    p.add_argument("--port", type=int, default=5452)
    args = p.parse_args(argv)

    cluster = PostgresCluster("lienthong_bench_retention", args.port).create()
    try:
        url = cluster.url.rsplit("/", 1)[0] + "/postgres"
        engine = make_engine(url)
        migrate.upgrade(engine)
        settings = Settings(database_url=url, retention_batch_size=args.batch_size)
        t0 = time.monotonic()
        expected = load(engine, args.documents, args.payload_bytes, args.days)
        load_seconds = time.monotonic() - t0
        vacuum(engine, full=False)  # statistics, as autovacuum would have them
        before = table_bytes(engine)

        total_batches = -(-args.documents // args.batch_size)
        asked = [0]

        def stop_at_a_third() -> bool:
            asked[0] += 1
            return asked[0] > total_batches // 3

        first = run_retention(engine, settings, days=args.days, should_stop=stop_at_a_third)
        second = run_retention(engine, settings, days=args.days)
        with engine.connect() as conn:
            wrongly_removed = conn.execute(
                text(
                    "SELECT count(*) FROM documents d WHERE d.payload_removed_at IS NOT NULL "
                    "AND EXISTS (SELECT 1 FROM deliveries x WHERE x.document_pk = d.id "
                    "AND x.state = ANY(:needs))"
                ),
                {"needs": list(NEEDS_PAYLOAD)},
            ).scalar_one()
            removed = conn.execute(
                text("SELECT count(*) FROM documents WHERE payload_removed_at IS NOT NULL")
            ).scalar_one()
            metadata_rows = conn.execute(text("SELECT count(*) FROM documents")).scalar_one()
        vacuum_seconds = vacuum(engine, full=False)
        after_vacuum = table_bytes(engine)
        vacuum_full_seconds = vacuum(engine, full=True)
        after_full = table_bytes(engine)
        engine.dispose()
        batch_seconds = first.batch_seconds + second.batch_seconds
        result = {
            "documents": args.documents,
            "payload_bytes": args.payload_bytes,
            "load_seconds": round(load_seconds, 1),
            "expected": expected,
            "first_run": {
                "batches": first.batches,
                "removed": first.removed,
                "finished": first.finished,
                "seconds": round(first.seconds, 2),
            },
            "resumed_run": {
                "batches": second.batches,
                "removed": second.removed,
                "finished": second.finished,
                "seconds": round(second.seconds, 2),
            },
            "removed_total": first.removed + second.removed,
            "removed_in_database": removed,
            "bytes_removed_as_stored": first.bytes_removed + second.bytes_removed,
            "retention_seconds": round(first.seconds + second.seconds, 2),
            "slowest_batch_seconds": round(max(batch_seconds), 3),
            "median_batch_seconds": round(sorted(batch_seconds)[len(batch_seconds) // 2], 3),
            "documents_rows_kept": metadata_rows,
            "needed_payloads_removed": wrongly_removed,
            "table_bytes_before": before,
            "table_bytes_after_vacuum": after_vacuum,
            "vacuum_seconds": round(vacuum_seconds, 1),
            "table_bytes_after_vacuum_full": after_full,
            "vacuum_full_seconds": round(vacuum_full_seconds, 1),
        }
        print(json.dumps(result, indent=2))
        assert wrongly_removed == 0, "a payload a delivery still needs was removed"
        assert result["removed_total"] == expected["removable"] == removed
        assert metadata_rows == args.documents
        return result
    finally:
        cluster.drop()


if __name__ == "__main__":
    os.environ.setdefault("LIENTHONG_LOG_FORMAT", "console")
    main()
