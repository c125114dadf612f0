"""The relay's batched statements against PostgreSQL, where their details matter."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import Engine, insert, select

from relay.db.engine import make_engine
from relay.db.tables import deliveries, documents, events
from relay.worker import store
from tests.conftest import EnvFactory
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


def _stale_document(engine: Engine, payload: bytes, recipients: int) -> tuple[int, list[int]]:
    """A stored document with ``recipients`` pending deliveries untouched for an hour."""
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
                payload=payload,
            )
            .returning(documents.c.id)
        ).scalar_one()
        an_hour_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
        dids = [
            conn.execute(
                insert(deliveries)
                .values(
                    document_pk=pk,
                    recipient=random_code(),
                    route_to=code,
                    message_id=str(uuid.uuid4()),
                    state="pending",
                    updated_at=an_hour_ago,
                )
                .returning(deliveries.c.id)
            ).scalar_one()
            for _ in range(recipients)
        ]
    return pk, dids


def test_the_sweep_reads_each_document_once_and_holds_a_bounded_number_of_bytes(
    make_env: EnvFactory,
) -> None:
    own = make_engine(make_env().database_url)  # no other test's stale deliveries here
    try:
        first = _stale_document(own, b"a" * 1000, 3)
        second = _stale_document(own, b"b" * 1000, 2)
        third = _stale_document(own, b"c" * 1000, 1)
        big = _stale_document(own, b"d" * 5000, 2)

        def sweep() -> list[store.PendingDelivery]:
            with own.begin() as conn:
                return store.claim_stale_pending(conn, 60, limit=100, max_bytes=2500)

        got = sweep()
        assert [p.delivery_id for p in got] == first[1] + second[1]
        # one bytes object per document, shared by its deliveries
        assert len({id(p.payload) for p in got}) == 2
        assert {p.payload for p in got} == {b"a" * 1000, b"b" * 1000}
        # the rest stays stale for the next sweeps; a document larger than the bound goes alone
        assert [p.delivery_id for p in sweep()] == third[1]
        assert [p.delivery_id for p in sweep()] == big[1]
        assert sweep() == []
    finally:
        own.dispose()
