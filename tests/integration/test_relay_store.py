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


@pytest.mark.parametrize(
    "payload_bytes",
    [1000, store.ROW_BY_ROW_BYTES],
    ids=["small payloads, as arrays", "large payloads, a row per statement"],
)
def test_documents_are_inserted_alike_whatever_their_payloads_weigh(
    engine: Engine, payload_bytes: int
) -> None:
    """Both forms of ``bulk_insert``: the same rows stored, the same ids returned, a submission
    already stored returns nothing (ON CONFLICT DO NOTHING) and the others still go in."""
    code = random_code()

    def row(n: int, payload: bytes) -> dict[str, object]:
        return {
            "message_id": f"{code}-{n}",
            "document_id": f"{code},2026/12/01,{n}/VP",
            "business_type": 0,
            "sender": code,
            "submitted_by": code,
            "subject": f"Công văn số {n}",
            "payload": payload,
        }

    payloads = [bytes([n]) * payload_bytes for n in range(4)]
    with engine.begin() as conn:
        first = store.insert_documents(conn, [row(0, payloads[0])])
    rows = [row(n, p) for n, p in enumerate(payloads)]
    assert (payload_bytes >= store.ROW_BY_ROW_BYTES) == (payload_bytes > 1000)
    with engine.begin() as conn:
        again = store.insert_documents(conn, rows)
    assert list(first) == [(code, f"{code}-0")]
    assert sorted(again) == [(code, f"{code}-{n}") for n in (1, 2, 3)]  # 0 was there already
    with engine.connect() as conn:
        stored = dict(
            conn.execute(
                select(documents.c.id, documents.c.payload).where(documents.c.sender == code)
            ).all()
        )
    assert {first[(code, f"{code}-0")]: payloads[0]} | {
        again[(code, f"{code}-{n}")]: payloads[n] for n in (1, 2, 3)
    } == {pk: bytes(p) for pk, p in stored.items()}
