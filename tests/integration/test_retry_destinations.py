"""A recipient that fails everything is detected as down, reported once, probed, and released;
the persisted schedule survives a restart and is shared by several workers (issue 5)."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import ColumnElement, Engine, func, select

from relay.broker.management import ManagementClient
from relay.config import Settings
from relay.db.tables import deliveries, destinations, events
from tests.retry_support import (
    FAST,
    FakeAdapter,
    add_agency,
    drain,
    retry_worker,
    run_cli,
    running_adapter,
    submit_many,
    time_passes,
    wait_until,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def fast_env(env: Settings) -> Settings:
    """The run's shared environment with short retry delays (agency codes keep tests apart)."""
    return env.model_copy(update={**FAST, "retry_max_attempts": 8})


@pytest.fixture(scope="module")
def db(engine: Engine) -> Engine:
    return engine


def _count(db: Engine, *where: ColumnElement[bool]) -> int:
    with db.connect() as conn:
        n: int = conn.execute(
            select(func.count()).select_from(deliveries).where(*where)
        ).scalar_one()
    return n


def _events(db: Engine, kind: str, actor: str) -> int:
    with db.connect() as conn:
        n: int = conn.execute(
            select(func.count())
            .select_from(events)
            .where(events.c.kind == kind, events.c.actor == actor)
        ).scalar_one()
    return n


def _destination_state(db: Engine, code: str) -> str | None:
    with db.connect() as conn:
        state: str | None = conn.execute(
            select(destinations.c.state).where(destinations.c.code == code)
        ).scalar_one_or_none()
    return state


def test_a_hundred_documents_to_a_recipient_that_is_down_make_one_report_and_all_arrive_later(
    fast_env: Settings, db: Engine, management: ManagementClient
) -> None:
    sender = add_agency(fast_env, db, management)
    recipient = add_agency(fast_env, db, management)
    up = {"yes": False}
    adapter = FakeAdapter(fast_env, db, recipient, accept=lambda mid, n: up["yes"])
    with retry_worker(fast_env), running_adapter(adapter):
        sent = submit_many(db, fast_env, sender.code, recipient.code, 100)
        mine = deliveries.c.route_to == recipient.code
        wait_until(
            lambda: (
                _destination_state(db, recipient.code) == "down"
                and _count(db, mine, deliveries.c.state == "retrying") == 100
            ),
            20,
            "the destination to be down with all 100 deliveries held",
        )
        time.sleep(2.5)  # probe interval 1 s: a couple of probes, no retry storm
        # Every document came back once; while down, only probes go out, not 100 retries.
        assert len({mid for mid, _ in adapter.rejected}) == 100
        wasted = len(adapter.rejected) - 100
        assert wasted <= 20, adapter.rejected  # a few early retries and probes, not 100
        assert _events(db, "destination_down", recipient.code) == 1
        assert _count(db, mine, deliveries.c.attempts > 2) == 0  # held: no attempts burnt

        code, out = run_cli(fast_env, "failures", "--json")
        assert code == 0, out
        report = json.loads(out)
        down = [d for d in report["destinations_down"] if d["code"] == recipient.code]
        assert len(down) == 1 and down[0]["held"] >= 99
        code, out = run_cli(fast_env, "failures")
        assert f"DESTINATION DOWN {recipient.code}" in out

        up["yes"] = True  # the recipient's DMS is back
        wait_until(lambda: len(set(adapter.acked)) == 100, 20, "all 100 documents")
        time.sleep(0.5)
    assert sorted(adapter.acked) == sorted(s.delivery_message_id for s in sent)  # once each
    assert _destination_state(db, recipient.code) == "up"
    assert _events(db, "destination_down", recipient.code) == 1
    assert _events(db, "destination_up", recipient.code) == 1
    assert _count(db, mine, deliveries.c.state == "delivered") == 100


def test_retries_scheduled_before_a_restart_are_sent_once_by_the_workers_after_it(
    fast_env: Settings, db: Engine, management: ManagementClient
) -> None:
    settings = fast_env.model_copy(
        update={"retry_base_seconds": 60.0, "retry_max_seconds": 60.0, "destination_down_after": 50}
    )
    sender = add_agency(settings, db, management)
    recipient = add_agency(settings, db, management)
    adapter = FakeAdapter(settings, db, recipient, accept=lambda mid, n: n >= 2)
    mine = deliveries.c.route_to == recipient.code
    with running_adapter(adapter):
        with retry_worker(settings):
            sent = submit_many(db, settings, sender.code, recipient.code, 20)
            wait_until(
                lambda: _count(db, mine, deliveries.c.attempts == 1) == 20,
                15,
                "every document returned once and rescheduled",
            )
        # The relay is stopped; retries wait in PostgreSQL. Two workers share them afterwards.
        scheduled = _count(db, mine, deliveries.c.state == "retrying")
        assert time_passes(db, recipient.code) == scheduled  # their time comes meanwhile
        assert scheduled > 0, "every retry was already sent; the test proves nothing"
        with retry_worker(settings), retry_worker(settings):
            wait_until(lambda: len(adapter.acked) >= 20, 20, "all 20 documents")
            time.sleep(1.0)
    assert sorted(adapter.acked) == sorted(s.delivery_message_id for s in sent)
    assert all(n == 2 for n in adapter.seen.values()), adapter.seen


def test_a_probe_that_does_not_come_back_brings_the_destination_up_and_releases_the_rest(
    fast_env: Settings, db: Engine, management: ManagementClient
) -> None:
    sender = add_agency(fast_env, db, management)
    recipient = add_agency(fast_env, db, management)
    adapter = FakeAdapter(fast_env, db, recipient, accept=lambda mid, n: False)
    mine = deliveries.c.route_to == recipient.code
    with retry_worker(fast_env):
        with running_adapter(adapter):
            sent = submit_many(db, fast_env, sender.code, recipient.code, 6)
            wait_until(lambda: _destination_state(db, recipient.code) == "down", 10, "down")
        # The adapter is gone now: the next probe stays in the inbox instead of coming back.
        wait_until(lambda: _destination_state(db, recipient.code) == "up", 10, "up again")
        wait_until(
            lambda: _count(db, mine, deliveries.c.state == "queued") == 6, 10, "all released"
        )
    with db.connect() as conn:
        why = conn.execute(
            select(events.c.description).where(
                events.c.kind == "destination_up", events.c.actor == recipient.code
            )
        ).scalar_one()
    assert "the probe was not returned" in why
    waiting = drain(fast_env, recipient)
    assert len(waiting) == 6 and all(kind == "document" for kind, _ in waiting)
    assert {s.delivery_message_id for s in sent} <= set(adapter.seen)
