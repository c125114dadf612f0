"""Retries through the real relay process (``lienthong relay run``): a document submitted by an
agency, rejected by the recipient's adapter, retried, and traced; and a relay restarted while
retries are scheduled (issue 5)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import Engine, func, select

from relay.config import Settings
from relay.db.tables import deliveries
from tests import relay_support as rs
from tests.retry_support import (
    FAST,
    STAFF,
    Agency,
    FakeAdapter,
    run_cli,
    running_adapter,
    time_passes,
)
from tests.services import random_code

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def relay_env(env: Settings) -> Settings:
    """The run's shared environment with short retry delays (agency codes keep tests apart)."""
    return env.model_copy(update={**FAST, "agency_poll_seconds": 0.5})


@pytest.fixture(scope="module")
def db(engine: Engine) -> Engine:
    return engine


def _pair(settings: Settings, db: Engine) -> tuple[rs.Agency, rs.Agency]:
    a = rs.add_agency(settings, db, random_code())
    b = rs.add_agency(settings, db, random_code())
    return a, b


def _as_retry_agency(agency: rs.Agency) -> Agency:
    assert agency.password is not None
    return Agency(agency.code, agency.password)


def _states(db: Engine, route_to: str) -> dict[str, int]:
    with db.connect() as conn:
        rows = conn.execute(
            select(deliveries.c.state, func.count())
            .where(deliveries.c.route_to == route_to)
            .group_by(deliveries.c.state)
        ).all()
    return {state: n for state, n in rows}


def _returns_recorded(db: Engine, route_to: str) -> int:
    """Deliveries to ``route_to`` with a failed attempt counted (their first copy came back)."""
    with db.connect() as conn:
        n: int = conn.execute(
            select(func.count()).where(
                deliveries.c.route_to == route_to, deliveries.c.attempts >= 1
            )
        ).scalar_one()
    return n


def _rows(db: Engine, route_to: str) -> list[tuple[object, ...]]:
    """Each delivery's state, attempts and seconds to its next attempt (a failure's context)."""
    with db.connect() as conn:
        rows = conn.execute(
            select(
                deliveries.c.message_id,
                deliveries.c.state,
                deliveries.c.attempts,
                func.extract("epoch", deliveries.c.next_attempt_at - func.now()),
            ).where(deliveries.c.route_to == route_to)
        ).all()
    return [tuple(r) for r in rows]


def test_through_the_relay_a_document_rejected_twice_is_delivered_once_and_traced(
    relay_env: Settings, db: Engine
) -> None:
    a, b = _pair(relay_env, db)
    adapter = FakeAdapter(
        relay_env, db, _as_retry_agency(b), accept=lambda mid, n: n >= 3, report_01=True
    )
    doc = rs.make_document(a.code, [b.code])
    with rs.RelayProcess(relay_env) as relay, running_adapter(adapter):
        relay.wait_consuming([a.code, b.code])
        rs.publish(a, doc)
        rs.wait_until(lambda: _states(db, b.code).get("delivered") == 1, timeout=20)
        got = rs.drain(a, expect=2, timeout=10)  # the accepted receipt and status 01
    assert len(adapter.acked) == 1
    assert list(adapter.seen.values()) == [3]
    kinds = sorted(m.type or "" for m in got)
    assert kinds == ["receipt", "status"], got

    code, out = run_cli(relay_env, "trace", doc.document_id, "--json")
    assert code == 0, out
    timeline = json.loads(out)["submissions"][0]["recipients"][0]
    assert timeline["state"] == "delivered"
    events = [e["kind"] for e in timeline["events"]]
    assert events.count("returned") == 2
    assert events.count("retry_published") == 2
    assert events.index("queued") < events.index("returned")
    status = [e for e in timeline["events"] if e["kind"] == "status"]
    assert status and status[0]["status_code"] == "01"
    assert status[0]["status"] == "Đã đến"

    code, out = run_cli(relay_env, "trace", doc.document_id)
    assert code == 0, out
    assert "attempt 1 published" in out
    assert "attempt 2 published" in out and "attempt 3 published" in out
    assert "01 Đã đến" in out and STAFF in out


def test_restarting_the_relay_while_retries_are_scheduled_loses_none_and_sends_none_twice(
    relay_env: Settings, db: Engine
) -> None:
    settings = relay_env.model_copy(
        update={"retry_base_seconds": 60.0, "retry_max_seconds": 60.0, "destination_down_after": 50}
    )
    a, b = _pair(settings, db)
    adapter = FakeAdapter(
        settings, db, _as_retry_agency(b), accept=lambda mid, n: n >= 2, report_01=True
    )
    docs = [rs.make_document(a.code, [b.code]) for _ in range(10)]
    with running_adapter(adapter):
        with rs.RelayProcess(settings) as relay:
            relay.wait_consuming([a.code, b.code])
            rs.publish_many(a, docs)
            rs.wait_until(lambda: len(adapter.rejected) == 10, timeout=20)
            # Every first copy's return recorded before the stop: a return the stopped relay
            # left in lienthong.returned is handled after the restart and gets a fresh delay
            # (full jitter, up to a minute), not the time that passed below. ``queued`` alone
            # does not say it: a first copy rejected and not yet handled is ``queued`` too.
            rs.wait_until(lambda: _returns_recorded(db, b.code) == 10, timeout=20)
        waiting = _states(db, b.code).get("retrying", 0)
        assert waiting > 0, "every retry was sent before the stop; the test proves nothing"
        assert time_passes(db, b.code) == waiting  # their time comes while the relay is down
        with rs.RelayProcess(settings) as relay:
            try:
                rs.wait_until(lambda: _states(db, b.code).get("delivered") == 10, timeout=30)
            except AssertionError as e:
                raise AssertionError(f"{e}\n{_rows(db, b.code)}\n{relay.log_text()[-6000:]}") from e
    assert len(adapter.acked) == 10 and len(set(adapter.acked)) == 10
    assert sorted(adapter.seen.values()) == [2] * 10, adapter.seen
