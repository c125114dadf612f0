"""Retention of payloads (issue 18): what goes, what a delivery still needs, checkpoints."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
import uuid

import pytest
from sqlalchemy import Engine, func, insert, select

from relay.config import Settings
from relay.db.tables import deliveries, documents, events, operation_checkpoints
from relay.retention.job import CHECKPOINT, run_retention
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
        drain(a, expect=5, timeout=20)  # accepted, the 01, the 13's receipt, the 15

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
