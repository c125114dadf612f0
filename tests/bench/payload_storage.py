"""How to store ``documents.payload``: the choices measured on the 1 MiB document (issue 14).

``python -m tests.bench.payload_storage [--documents N] [--batch B] [--attachment-bytes S]``
creates a database of its own on ``LIENTHONG_TEST_DATABASE_URL``'s server, and for each choice
a table shaped like ``documents`` (the payload and a few columns), then stores N documents as the
relay does (B per transaction, one multi-row ``INSERT … SELECT unnest(…)`` with binary
parameters, committed) and reads them all back (as the sweep and a resend do). It prints, per
choice: seconds to store, documents/s, WAL bytes written (``pg_current_wal_lsn`` before and
after), bytes on disk (``pg_total_relation_size``) and seconds to read back. The database is
dropped at the end.

Choices: ``extended-pglz`` (PostgreSQL's default), ``extended-lz4`` (migration 0002),
``external`` (``STORAGE EXTERNAL``: out of line, never compressed), ``main-lz4`` (``STORAGE
MAIN``: compressed, kept in line while it can) and ``large-object`` (``lo_from_bytea``, the
row holding its oid).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from tests.bench.env import services_from_env


@dataclass(frozen=True)
class Choice:
    name: str
    ddl: str  # after CREATE TABLE
    insert: str  # one parameter: bytea[]
    read: str


_COLUMNS = (
    "id bigserial primary key, message_id text not null, received_at timestamptz default now()"
)
_INSERT = (
    "INSERT INTO {t} (message_id, payload) "
    "SELECT * FROM unnest(CAST(%b AS text[]), CAST(%b AS bytea[]))"
)
_READ = "SELECT payload FROM {t} ORDER BY id"

CHOICES = [
    Choice(
        "extended-pglz",
        "ALTER TABLE {t} ALTER COLUMN payload SET COMPRESSION pglz",
        _INSERT,
        _READ,
    ),
    Choice(
        "extended-lz4",
        "ALTER TABLE {t} ALTER COLUMN payload SET COMPRESSION lz4",
        _INSERT,
        _READ,
    ),
    Choice("external", "ALTER TABLE {t} ALTER COLUMN payload SET STORAGE EXTERNAL", _INSERT, _READ),
    Choice(
        "main-lz4",
        "ALTER TABLE {t} ALTER COLUMN payload SET STORAGE MAIN, "
        "ALTER COLUMN payload SET COMPRESSION lz4",
        _INSERT,
        _READ,
    ),
    Choice(
        "large-object",
        "",
        "INSERT INTO {t} (message_id, oid) SELECT m, lo_from_bytea(0, p) "
        "FROM unnest(CAST(%b AS text[]), CAST(%b AS bytea[])) AS u(m, p)",
        "SELECT lo_get(oid) FROM {t} ORDER BY id",
    ),
]


def document_body(attachment_bytes: int) -> bytes:
    """A ``lienthong.document/1``-shaped body with one attachment of random bytes (as the
    bench's 1 MiB scenario: base64 of incompressible data)."""
    raw = os.urandom(attachment_bytes)
    doc = {
        "schema": "lienthong.document/1",
        "document_id": f"000.00.00.G22,2026/11/30,{uuid.uuid4().hex[:8]}/BENCH",
        "subject": "Về việc đo hiệu năng trục liên thông",
        "content": "x" * 1800,
        "attachments": [
            {
                "name": "phu-luc.pdf",
                "content_type": "application/pdf",
                "size": len(raw),
                "sha256": hashlib.sha256(raw).hexdigest(),
                "data": base64.b64encode(raw).decode("ascii"),
            }
        ],
    }
    return json.dumps(doc).encode("utf-8")


def _wal(cur: psycopg.Cursor[Any]) -> int:
    cur.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")
    row = cur.fetchone()
    assert row is not None
    return int(row[0])


def measure(
    conn: psycopg.Connection[Any], choice: Choice, bodies: list[bytes], batch: int
) -> dict[str, float | int | str]:
    table = "bench_" + choice.name.replace("-", "_")
    payload_column = (
        "oid oid not null" if choice.name == "large-object" else "payload bytea not null"
    )
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE {table} ({_COLUMNS}, {payload_column})")
        if choice.ddl:
            cur.execute(choice.ddl.format(t=table))
        conn.commit()
        cur.execute("CHECKPOINT")  # full-page images start afresh for every choice
        wal_before = _wal(cur)
        started = time.perf_counter()
        for start in range(0, len(bodies), batch):
            part = bodies[start : start + batch]
            ids = [uuid.uuid4().hex for _ in part]
            cur.execute(choice.insert.format(t=table), (ids, part))
            conn.commit()
        stored_s = time.perf_counter() - started
        wal = _wal(cur) - wal_before
        cur.execute(
            f"SELECT pg_total_relation_size('{table}') + "
            f"CASE WHEN '{choice.name}' = 'large-object' THEN "
            f"(SELECT coalesce(sum(octet_length(data)), 0) FROM pg_largeobject) ELSE 0 END"
        )
        row = cur.fetchone()
        assert row is not None
        on_disk = int(row[0])
        started = time.perf_counter()
        cur.execute(choice.read.format(t=table))
        read = sum(len(r[0]) for r in cur.fetchall())
        read_s = time.perf_counter() - started
        conn.commit()
        if read != sum(len(b) for b in bodies):
            raise AssertionError(f"{choice.name}: read back {read} bytes")
        if choice.name == "large-object":
            cur.execute(f"SELECT lo_unlink(oid) FROM {table}")
        cur.execute(f"DROP TABLE {table}")
        conn.commit()
    return {
        "choice": choice.name,
        "store_s": round(stored_s, 2),
        "docs_per_s": round(len(bodies) / stored_s, 1),
        "wal_mb": round(wal / 1e6, 1),
        "disk_mb": round(on_disk / 1e6, 1),
        "read_s": round(read_s, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.payload_storage")
    parser.add_argument("--documents", type=int, default=120)
    parser.add_argument("--batch", type=int, default=6, help="documents per transaction")
    parser.add_argument("--attachment-bytes", type=int, default=1024 * 1024)
    parser.add_argument("--rounds", type=int, default=2, help="each choice this many times")
    args = parser.parse_args(argv)
    url = services_from_env().database_url.replace("postgresql+psycopg://", "postgresql://")
    name = f"lienthong_storage_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        base, _, _ = url.rpartition("/")
        bodies = [document_body(args.attachment_bytes) for _ in range(args.documents)]
        print(
            f"{args.documents} documents of {len(bodies[0]):,} bytes, {args.batch} per "
            f"transaction, {args.rounds} round(s)",
            flush=True,
        )
        results: list[dict[str, float | int | str]] = []
        with psycopg.connect(f"{base}/{name}") as conn:
            for _ in range(args.rounds):
                for choice in CHOICES:
                    r = measure(conn, choice, bodies, args.batch)
                    results.append(r)
                    print("  " + "  ".join(f"{k}={v}" for k, v in r.items()), flush=True)
        _print_table(results, lambda r: str(r["choice"]))
    finally:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    return 0


def _print_table(
    results: list[dict[str, float | int | str]], key: Callable[[dict[str, Any]], str]
) -> None:
    best: dict[str, dict[str, float | int | str]] = {}
    for r in results:  # the best round of each choice (the machine is shared)
        k = key(r)
        if k not in best or float(r["store_s"]) < float(best[k]["store_s"]):
            best[k] = r
    print("\n| choice | store s | docs/s | WAL MB | on disk MB | read back s |")
    print("|---|---|---|---|---|---|")
    for r in best.values():
        print(
            f"| {r['choice']} | {r['store_s']} | {r['docs_per_s']} | {r['wal_mb']} | "
            f"{r['disk_mb']} | {r['read_s']} |"
        )


if __name__ == "__main__":
    sys.exit(main())
