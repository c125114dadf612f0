"""Killing the relay mid-stream loses nothing and stores nothing twice (issue 3)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, Table, func, select

from relay.config import Settings
from relay.db.engine import make_engine
from relay.db.tables import deliveries, documents, receipts
from tests.conftest import EnvFactory
from tests.relay_support import (
    RelayProcess,
    add_agency,
    drain,
    make_document,
    publish_many,
    wait_until,
)
from tests.services import random_code

pytestmark = pytest.mark.integration

N = 1000


@pytest.fixture()
def crash_env(make_env: EnvFactory) -> Settings:
    # Small batches so that a kill lands between many commits and confirms.
    return make_env().model_copy(
        update={
            "agency_poll_seconds": 0.2,
            "batch_size": 50,
            # A graceful stop finishes what the relay holds: keep that well below N.
            "prefetch": 100,
            "batch_wait_ms": 5,
            "pending_sweep_seconds": 1.0,
        }
    )


@pytest.fixture()
def db(crash_env: Settings) -> Iterator[Engine]:
    eng = make_engine(crash_env.database_url)
    yield eng
    eng.dispose()


def _count(db: Engine, table: Table) -> int:
    with db.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def _all_queued(db: Engine) -> bool:
    with db.connect() as conn:
        states: dict[str, int] = dict(
            conn.execute(
                select(deliveries.c.state, func.count()).group_by(deliveries.c.state)
            ).all()
        )
    return states == {"queued": 2 * N}


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_stopping_the_relay_mid_stream_and_restarting_it_loses_nothing_and_stores_nothing_twice(
    crash_env: Settings, db: Engine, how: str
) -> None:
    a, b, c = (add_agency(crash_env, db, random_code()) for _ in range(3))
    docs = [make_document(a.code, [b.code, c.code]) for _ in range(N)]
    ids = publish_many(a, docs)

    first = RelayProcess(crash_env).start()
    try:
        wait_until(lambda: _count(db, documents) >= N // 4, timeout=30, interval=0.01)
        if how == "SIGKILL":
            first.kill()
        else:
            assert first.stop() == 0, first.log_text()
    finally:
        first.stop()
    assert _count(db, documents) < N, "the relay finished before it was stopped"

    with RelayProcess(crash_env) as second:
        wait_until(lambda: _all_queued(db), timeout=60, interval=0.2)
        at_b = drain(b, expect=None, timeout=30, quiet=1.5)
        at_c = drain(c, expect=None, timeout=30, quiet=1.5)
        at_a = drain(a, expect=None, timeout=30, quiet=1.5)
        assert second.running()

    assert _count(db, documents) == N
    assert _count(db, deliveries) == 2 * N
    # Every document reached every inbox; a copy published twice carries the same message id.
    for inbox in (at_b, at_c):
        assert {m.headers["x-lienthong-submission-id"] for m in inbox} == set(ids)
        per_id: dict[str, set[bytes]] = {}
        for m in inbox:
            per_id.setdefault(str(m.message_id), set()).add(m.body)
        assert len(per_id) == N and all(len(bodies) == 1 for bodies in per_id.values())
    # Every submission has its one accepted receipt stored, and the sender got it.
    with db.connect() as conn:
        stored = conn.execute(
            select(receipts.c.in_reply_to).where(receipts.c.kind == "accepted")
        ).all()
    assert sorted(mid for (mid,) in stored) == sorted(ids)
    assert {json.loads(m.body)["in_reply_to"] for m in at_a} == set(ids)
