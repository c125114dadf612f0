"""The relay's batched statements against PostgreSQL, where their details matter."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import Engine, insert, select

from relay.db.tables import deliveries, documents, events
from relay.worker import store
from tests.services import random_code

pytestmark = pytest.mark.integration


def _delivery(engine: Engine, state: str) -> tuple[int, int]:
    code = random_code()
    with engine.begin() as conn:
        pk = conn.execute(
            insert(documents)
            .values(
                message_id=str(uuid.uuid4()),
                document_id=f"{code},2026/11/24,{uuid.uuid4().hex[:8]}/VP",
                business_type=0,
                sender=code,
                submitted_by=code,
                payload=b"{}",
            )
            .returning(documents.c.id)
        ).scalar_one()
        did = conn.execute(
            insert(deliveries)
            .values(
                document_pk=pk,
                recipient=code,
                route_to=code,
                message_id=str(uuid.uuid4()),
                state=state,
            )
            .returning(deliveries.c.id)
        ).scalar_one()
    return pk, did


def _queued_events(engine: Engine, did: int) -> list[dt.datetime]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(events.c.at).where(events.c.delivery_id == did, events.c.kind == "queued")
            ).scalars()
        )


def _state(engine: Engine, did: int) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(select(deliveries.c.state).where(deliveries.c.id == did)).scalar_one()
        )


def test_a_confirmed_pending_delivery_becomes_queued_with_an_event_at_its_publish_time(
    engine: Engine,
) -> None:
    _, did = _delivery(engine, "pending")
    published = dt.datetime(2026, 11, 24, 8, 0, tzinfo=dt.UTC)
    with engine.begin() as conn:
        store.mark_queued(conn, [did], published)
    assert _state(engine, did) == "queued"
    assert _queued_events(engine, did) == [published]


def test_a_confirm_that_comes_after_the_return_keeps_the_state_and_still_records_the_attempt(
    engine: Engine,
) -> None:
    """The return of attempt 1 can beat its confirm: the delivery is already ``retrying``
    and must stay so, but the timeline still shows attempt 1, before the return."""
    _, did = _delivery(engine, "retrying")
    published = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    with engine.begin() as conn:
        conn.execute(insert(events).values(delivery_id=did, kind="returned"))
        store.mark_queued(conn, [did], published)
    assert _state(engine, did) == "retrying"
    assert _queued_events(engine, did) == [published]
    with engine.connect() as conn:
        kinds = conn.execute(
            select(events.c.kind)
            .where(events.c.delivery_id == did)
            .order_by(events.c.at, events.c.id)
        ).scalars()
        assert list(kinds) == ["queued", "returned"]
