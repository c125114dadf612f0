"""Retention of payloads (issue 18): what goes, what a delivery still needs, checkpoints."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
import time
import uuid

import pytest
from sqlalchemy import Engine, func, insert, select

from relay.config import Settings
from relay.db.tables import blob_chunks, deliveries, documents, events, operation_checkpoints
from relay.retention.job import CHECKPOINT, run_retention
from schemas import Attachment
from schemas.envelope import encode_message
from tests.relay_support import (
    RelayProcess,
    add_agency,
    drain,
    make_document,
    make_status,
    publish,
    settings_env,
)
from tests.services import random_code

pytestmark = pytest.mark.integration

LIENTHONG = [sys.executable, "-c", "from lienthong.cli import main; main()"]

OLD = dt.datetime.now(dt.UTC) - dt.timedelta(days=100)
NEW = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)


def add_document(conn: object, received_at: dt.datetime, *states: str) -> int:
    """A document with one delivery per state, as the relay would have stored it."""
    mid = str(uuid.uuid4())
    pk = conn.execute(  # type: ignore[attr-defined]
        insert(documents)
        .values(
            message_id=mid,
            document_id=f"000.00.00.G22,2026/08/01,{mid[:8]}/VP",
            business_type=0,
            sender="000.00.00.G22",
            submitted_by="000.00.00.G22",
            payload=os.urandom(5000),  # incompressible: stored at its size
            received_at=received_at,
        )
        .returning(documents.c.id)
    ).scalar_one()
    for i, state in enumerate(states):
        did = conn.execute(  # type: ignore[attr-defined]
            insert(deliveries)
            .values(
                document_pk=pk,
                recipient=f"000.00.0{i}.H26",
                route_to="000.00.00.H26",
                message_id=str(uuid.uuid4()),
                state=state,
            )
            .returning(deliveries.c.id)
        ).scalar_one()
        conn.execute(  # type: ignore[attr-defined]
            insert(events).values(document_pk=pk, delivery_id=did, kind="queued")
        )
    return int(pk)


def add_chunks(conn: object, agency: str, stored_at: dt.datetime, n: int = 2) -> str:
    """``n`` chunk rows of a new attachment uploaded by ``agency``; returns its SHA-256."""
    sha = hashlib.sha256(os.urandom(32)).hexdigest()
    for i in range(n):
        conn.execute(  # type: ignore[attr-defined]
            insert(blob_chunks).values(
                submitted_by=agency,
                sha256=sha,
                offset=i * 1000,
                size=n * 1000,
                length=1000,
                data=os.urandom(1000),
                stored_at=stored_at,
            )
        )
    return sha


def add_chunked_document(
    conn: object, agency: str, received_at: dt.datetime, sha256: str, *states: str
) -> int:
    """A document from ``agency`` whose attachment ``sha256`` travels in chunks, one delivery
    per state."""
    doc = make_document(agency, ["000.00.00.H26"])
    doc.attachments = [
        Attachment(name="scan.pdf", size=2000, sha256=sha256, data="", transfer="chunks")
    ]
    pk = conn.execute(  # type: ignore[attr-defined]
        insert(documents)
        .values(
            message_id=str(uuid.uuid4()),
            document_id=doc.document_id,
            business_type=0,
            sender=agency,
            submitted_by=agency,
            payload=encode_message(doc),
            received_at=received_at,
        )
        .returning(documents.c.id)
    ).scalar_one()
    for i, state in enumerate(states):
        conn.execute(  # type: ignore[attr-defined]
            insert(deliveries).values(
                document_pk=pk,
                recipient=f"000.00.0{i}.H26",
                route_to="000.00.00.H26",
                message_id=str(uuid.uuid4()),
                state=state,
            )
        )
    return int(pk)


def chunks_kept(engine: Engine, agency: str, sha256: str) -> int:
    with engine.connect() as conn:
        n: int = conn.execute(
            select(func.count())
            .select_from(blob_chunks)
            .where(blob_chunks.c.submitted_by == agency, blob_chunks.c.sha256 == sha256)
        ).scalar_one()
    return n


def payload_kept(engine: Engine, pk: int) -> bool:
    with engine.connect() as conn:
        row = conn.execute(
            select(
                func.octet_length(documents.c.payload),
                documents.c.payload_removed_at,
                documents.c.document_id,
            ).where(documents.c.id == pk)
        ).one()
    assert row.document_id  # the metadata stays either way
    return bool(row[0]) and row.payload_removed_at is None


def test_only_old_payloads_that_no_delivery_needs_are_removed(
    relay_env: Settings, db: Engine
) -> None:
    with db.begin() as conn:
        done = add_document(conn, OLD, "completed", "refused", "accepted")
        no_recipient = add_document(conn, OLD)
        needed = {
            state: add_document(conn, OLD, "completed", state)
            for state in ("pending", "queued", "retrying", "failed", "recall_requested")
        }
        recent = add_document(conn, NEW, "completed")
        recalled_recently = add_document(conn, NEW, "recalled", "delivered")

    result = run_retention(db, relay_env, days=30, batch_size=3)

    assert not payload_kept(db, done)
    assert not payload_kept(db, no_recipient)
    assert {s: payload_kept(db, pk) for s, pk in needed.items()} == dict.fromkeys(needed, True)
    assert payload_kept(db, recent)
    assert not payload_kept(db, recalled_recently)  # a take-back accepted: no copy kept
    assert result.removed >= 3 and result.bytes_removed >= 3 * 5000 and result.finished
    with db.connect() as conn:  # the timeline stays
        assert (
            conn.execute(
                select(func.count()).select_from(events).where(events.c.document_pk == done)
            ).scalar_one()
            == 3
        )


def test_a_stopped_run_resumes_from_its_checkpoint(relay_env: Settings, db: Engine) -> None:
    with db.begin() as conn:
        pks = [add_document(conn, OLD, "completed") for _ in range(6)]
    asked = [0]

    def stop_after_two() -> bool:  # asked before each batch
        asked[0] += 1
        return asked[0] > 2

    # Batches of one id: the run stops after two, the checkpoint remembers where.
    first = run_retention(db, relay_env, days=30, batch_size=1, should_stop=stop_after_two)
    assert (first.finished, first.batches) == (False, 2)
    with db.connect() as conn:
        position = conn.execute(
            select(operation_checkpoints.c.position).where(
                operation_checkpoints.c.name == CHECKPOINT
            )
        ).scalar_one()
    assert position > 0
    kept_before = [pk for pk in pks if payload_kept(db, pk)]
    second = run_retention(db, relay_env, days=30, batch_size=1000)
    assert second.finished and second.batches >= 1
    assert [pk for pk in pks if payload_kept(db, pk)] == []
    assert len(kept_before) >= 1  # the first run did not get to them all
    with db.connect() as conn:  # a finished run starts the next from the beginning
        assert (
            conn.execute(
                select(operation_checkpoints.c.position).where(
                    operation_checkpoints.c.name == CHECKPOINT
                )
            ).scalar_one()
            == 0
        )


def test_a_take_back_accepted_removes_the_hubs_copy_and_keeps_its_timeline(
    relay_env: Settings, db: Engine
) -> None:
    with RelayProcess(relay_env) as relay:
        a = add_agency(relay_env, db, random_code())
        b = add_agency(relay_env, db, random_code())
        relay.wait_consuming([a.code, b.code])
        doc = make_document(a.code, [b.code])
        publish(a, doc)
        drain(b, expect=1)
        publish(b, make_status(b.code, a.code, doc.document_id, "01"))
        drain(b, expect=1)  # the 01's receipt
        publish(a, make_status(a.code, b.code, doc.document_id, "13"))
        drain(b, expect=1)  # the 13
        publish(b, make_status(b.code, a.code, doc.document_id, "15"))
        to_a = drain(a, expect=4, timeout=20)  # accepted, the 01, the 13's receipt, the 15
        assert len(to_a) == 4, [m.type for m in to_a]

    def state() -> tuple[int, str]:
        with db.connect() as conn:
            pk, st = conn.execute(
                select(documents.c.id, deliveries.c.state)
                .join(deliveries, deliveries.c.document_pk == documents.c.id)
                .where(documents.c.document_id == doc.document_id)
            ).one()
        return int(pk), str(st)

    pk, recipient_state = state()
    assert recipient_state == "recalled"
    out = subprocess.run(
        [*LIENTHONG, "retention", "run", "--days", "3650", "--json"],
        env=settings_env(relay_env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["payloads_removed"] >= 1
    assert not payload_kept(db, pk)
    with db.connect() as conn:
        codes = conn.execute(
            select(events.c.status_code).where(
                events.c.document_pk == pk, events.c.kind == "status"
            )
        ).scalars()
        assert {"01", "13", "15"} <= set(codes)


def test_retention_run_without_days_says_it_is_off(relay_env: Settings) -> None:
    out = subprocess.run(
        [*LIENTHONG, "retention", "run"],
        env=settings_env(relay_env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    assert "LIENTHONG_RETENTION_DAYS=0" in out.stderr and "--days" in out.stderr


def test_with_retention_off_only_copies_taken_back_are_removed(
    relay_env: Settings, db: Engine
) -> None:
    with db.begin() as conn:
        old_done = add_document(conn, OLD, "completed")
        taken_back = add_document(conn, NEW, "recalled")
    run_retention(db, relay_env, days=None)
    assert payload_kept(db, old_done)
    assert not payload_kept(db, taken_back)


def test_the_relay_runs_retention_by_itself(relay_env: Settings, db: Engine) -> None:
    with db.begin() as conn:
        old_done = add_document(conn, OLD, "completed")
        old_needed = add_document(conn, OLD, "queued")
    settings = relay_env.model_copy(
        update={"retention_days": 30, "retention_interval_seconds": 0.5}
    )
    with RelayProcess(settings) as relay:
        deadline = time.monotonic() + 30
        while payload_kept(db, old_done):
            assert time.monotonic() < deadline, relay.log_text()
            time.sleep(0.2)
        relay.wait_for_log('"retention.run"')
    assert payload_kept(db, old_needed)


def test_attachment_chunks_go_with_the_last_payload_that_names_them(
    relay_env: Settings, db: Engine
) -> None:
    x, y = random_code(), random_code()
    with db.begin() as conn:
        alone = add_chunks(conn, x, OLD)
        done = add_chunked_document(conn, x, OLD, alone, "completed")
        shared = add_chunks(conn, x, OLD)  # named by an old document and a recent one
        old_shared = add_chunked_document(conn, x, OLD, shared, "completed")
        recent_shared = add_chunked_document(conn, x, NEW, shared, "completed")
        resendable = add_chunks(conn, x, OLD)  # its delivery failed: an operator may resend
        failed = add_chunked_document(conn, x, OLD, resendable, "completed", "failed")
        orphan = add_chunks(conn, x, OLD)  # uploaded, but its document never came
        uploading = add_chunks(conn, x, NEW)  # its document may still come
        # Another agency's rows under the same SHA-256 are its own, with its own documents.
        add_chunks_as(conn, y, alone, NEW)
        add_chunked_document(conn, y, NEW, alone, "completed")

    result = run_retention(db, relay_env, days=30)

    assert not payload_kept(db, done) and chunks_kept(db, x, alone) == 0
    assert not payload_kept(db, old_shared) and payload_kept(db, recent_shared)
    assert chunks_kept(db, x, shared) == 2
    assert payload_kept(db, failed) and chunks_kept(db, x, resendable) == 2
    assert chunks_kept(db, x, orphan) == 0
    assert chunks_kept(db, x, uploading) == 2
    assert chunks_kept(db, y, alone) == 2
    assert result.chunks_removed >= 4 and result.chunk_bytes_removed >= 4000


def test_with_retention_off_the_chunks_of_a_document_taken_back_go_with_it(
    relay_env: Settings, db: Engine
) -> None:
    x = random_code()
    with db.begin() as conn:
        sha = add_chunks(conn, x, NEW)
        taken_back = add_chunked_document(conn, x, NEW, sha, "recalled")
        orphan = add_chunks(conn, x, OLD)
    run_retention(db, relay_env, days=None)
    assert not payload_kept(db, taken_back) and chunks_kept(db, x, sha) == 0
    assert chunks_kept(db, x, orphan) == 2  # no age given: orphans wait for one


def add_chunks_as(conn: object, agency: str, sha256: str, stored_at: dt.datetime) -> None:
    """Two chunk rows of attachment ``sha256`` uploaded by ``agency``."""
    for i in range(2):
        conn.execute(  # type: ignore[attr-defined]
            insert(blob_chunks).values(
                submitted_by=agency,
                sha256=sha256,
                offset=i * 1000,
                size=2000,
                length=1000,
                data=os.urandom(1000),
                stored_at=stored_at,
            )
        )
