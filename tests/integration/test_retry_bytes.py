"""Issue 14 on the retry path, against PostgreSQL: each document's payload is read once per pass
and shared by its copies, and one pass loads at most ``store.PASS_MAX_BYTES`` of documents (the
first whatever its size); what does not fit is left for the next pass, neither claimed nor
leased. The broker is a recording function here: what is published, not how, is under test.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import Engine, insert, select, update

from relay.blobs import expiry
from relay.config import Settings
from relay.db.engine import make_engine
from relay.db.tables import deliveries, destinations, documents
from relay.domain.outgoing import Outgoing
from relay.retry import schedule, store
from relay.retry.resend import resend
from schemas import split_receipts
from schemas import topology as t
from tests.conftest import EnvFactory
from tests.services import random_code

pytestmark = pytest.mark.integration

#: Due times in creation order: the schedule takes the oldest first.
_order = itertools.count()


@dataclass(frozen=True)
class World:
    settings: Settings
    db: Engine


@pytest.fixture
def world(make_env: EnvFactory) -> Iterator[World]:
    """A database of the test's own: no other test's due deliveries in its passes."""
    settings = make_env()
    db = make_engine(settings.database_url)
    try:
        yield World(settings, db)
    finally:
        db.dispose()


@pytest.fixture
def small_bound(monkeypatch: pytest.MonkeyPatch) -> int:
    # raising=False: before issue 14 there was no bound to lower, and the test must fail then
    monkeypatch.setattr(store, "PASS_MAX_BYTES", 2500, raising=False)
    return 2500


class Broker:
    """Records what is published, and calls ``during`` on each document copy."""

    def __init__(self) -> None:
        self.copies: list[Outgoing] = []
        self.others: list[Outgoing] = []
        self.during: list[object] = []
        self.look = lambda: None

    def __call__(self, out: Outgoing) -> None:
        if out.message_type == t.TYPE_DOCUMENT:
            self.copies.append(out)
            self.during.append(self.look())
        else:
            self.others.append(out)

    def take(self) -> list[Outgoing]:
        got, self.copies = self.copies, []
        return got


def _document(
    db: Engine,
    payload: bytes,
    recipients: int,
    *,
    state: str = "retrying",
    route_to: list[str] | None = None,
    document_id: str | None = None,
    due: bool = True,
) -> list[str]:
    """A document and ``recipients`` deliveries of it in ``state``; their message ids."""
    code = random_code()
    routes = route_to or [random_code() for _ in range(recipients)]
    at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1000 - next(_order))
    with db.begin() as conn:
        pk = conn.execute(
            insert(documents)
            .values(
                message_id=str(uuid.uuid4()),
                document_id=document_id or f"{code},2026/11/30,{uuid.uuid4().hex[:8]}/VP",
                business_type=0,
                sender=code,
                submitted_by=code,
                payload=payload,
            )
            .returning(documents.c.id)
        ).scalar_one()
        mids = [str(uuid.uuid4()) for _ in routes]
        for mid, route in zip(mids, routes, strict=True):
            conn.execute(
                insert(deliveries).values(
                    document_pk=pk,
                    recipient=route,
                    route_to=route,
                    message_id=mid,
                    state=state,
                    attempts=8 if state == "failed" else 1,
                    next_attempt_at=at if due else None,
                    updated_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=10),
                )
            )
    return mids


def _rows(db: Engine, mids: list[str]) -> list[tuple[str, dt.datetime | None]]:
    with db.connect() as conn:
        rows = conn.execute(
            select(deliveries.c.state, deliveries.c.next_attempt_at)
            .where(deliveries.c.message_id.in_(mids))
            .order_by(deliveries.c.id)
        ).all()
    return [(r.state, r.next_attempt_at) for r in rows]


def _ids(outs: list[Outgoing]) -> list[str]:
    return [o.message_id for o in outs]


def test_a_tick_reads_a_document_due_for_many_recipients_once_and_publishes_one_body(
    world: World,
) -> None:
    payload = b'{"schema": "lienthong.document/1", "pad": "%s"}' % (b"x" * 4000)
    mids = _document(world.db, payload, 12)
    broker = Broker()

    assert schedule.publish_due(world.db, world.settings, broker) == 12

    copies = broker.take()
    assert sorted(_ids(copies)) == sorted(mids)
    assert all(o.body == payload for o in copies)
    # one bytes object for the twelve copies: the payload was loaded once, never copied
    assert len({id(o.body) for o in copies}) == 1
    assert {state for state, _ in _rows(world.db, mids)} == {"queued"}


def test_a_tick_claims_documents_up_to_the_byte_bound_and_the_rest_go_next_tick(
    world: World, small_bound: int
) -> None:
    first = _document(world.db, b"a" * 1000, 3)
    second = _document(world.db, b"b" * 1000, 2)
    third = _document(world.db, b"c" * 1000, 1)
    big = _document(world.db, b"d" * 5000, 2)  # over the bound: it goes alone
    left = third + big
    before = _rows(world.db, left)
    broker = Broker()

    def tick() -> list[str]:
        schedule.publish_due(world.db, world.settings, broker)
        return _ids(broker.take())

    assert tick() == first + second
    # neither claimed nor leased: still due, at the time they had
    assert _rows(world.db, left) == before
    assert tick() == third
    assert tick() == big
    assert tick() == []
    assert {state for state, _ in _rows(world.db, first + second + left)} == {"queued"}


def _down(db: Engine, code: str) -> None:
    with db.begin() as conn:
        conn.execute(
            insert(destinations).values(
                code=code,
                state="down",
                down_since=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1),
                last_probe_at=None,
            )
        )


def test_one_probe_pass_shares_a_document_between_destinations_and_stops_at_the_bound(
    world: World, small_bound: int
) -> None:
    codes = sorted(random_code() for _ in range(5))  # down destinations are probed by code
    for code in codes:
        _down(world.db, code)
    shared = _document(world.db, b"s" * 1000, 3, route_to=codes[:3], due=False)
    fourth = _document(world.db, b"f" * 1000, 1, route_to=codes[3:4], due=False)
    fifth = _document(world.db, b"g" * 1000, 1, route_to=codes[4:5], due=False)
    broker = Broker()

    schedule.probe_destinations(world.db, world.settings, broker)
    copies = broker.take()
    assert _ids(copies) == shared + fourth  # 2,000 bytes; the fifth would be 3,000
    assert len({id(o.body) for o in copies[:3]}) == 1
    assert _rows(world.db, fifth) == [("retrying", None)]  # not claimed: still held

    schedule.probe_destinations(world.db, world.settings, broker)
    assert _ids(broker.take()) == fifth


def test_resend_claims_and_publishes_submissions_up_to_the_bound_each_read_once(
    world: World, small_bound: int
) -> None:
    document_id = f"{random_code()},2026/11/30,{uuid.uuid4().hex[:8]}/VP"
    one = _document(world.db, b"1" * 2000, 2, state="failed", document_id=document_id)
    two = _document(world.db, b"2" * 2000, 2, state="failed", document_id=document_id)
    broker = Broker()
    broker.look = lambda: [state for state, _ in _rows(world.db, two)]

    done = resend(world.db, document_id, broker, by="test")

    assert [r.message_id for r in done] == one + two
    copies = broker.copies
    assert _ids(copies) == one + two
    assert [o.body for o in copies] == [b"1" * 2000] * 2 + [b"2" * 2000] * 2
    assert id(copies[0].body) == id(copies[1].body)
    assert id(copies[2].body) == id(copies[3].body)
    # the second submission was claimed once the first was published, not before
    assert broker.during[:2] == [["failed", "failed"]] * 2
    assert {state for state, _ in _rows(world.db, one + two)} == {"queued"}
    assert resend(world.db, document_id, broker, by="test") == []


def _chunked(pad: int) -> bytes:
    doc = {
        "attachments": [{"name": "scan.pdf", "size": 9, "sha256": "ab" * 32, "transfer": "chunks"}],
        "pad": "p" * pad,
    }
    return json.dumps(doc).encode()


def test_the_stale_chunked_sweep_reads_each_document_once_up_to_the_bound(
    world: World, small_bound: int
) -> None:
    first = _document(world.db, _chunked(900), 3, state="queued")
    second = _document(world.db, _chunked(900), 2, state="queued")
    third = _document(world.db, _chunked(900), 1, state="queued")
    with world.db.begin() as conn:  # queued in this order
        for n, mids in enumerate((first, second, third)):
            conn.execute(
                update(deliveries)
                .where(deliveries.c.message_id.in_(mids))
                .values(updated_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=10 - n))
            )

    with world.db.begin() as conn:
        stale = store.lock_stale_chunked(conn, 3600, 100)
    assert sorted(s.delivery.message_id for s in stale) == sorted(first + second)
    assert len({id(s.payload) for s in stale}) == 2

    settings = world.settings.model_copy(update={"transfer_timeout_hours": 1.0})
    broker = Broker()
    assert expiry.expire_transfers(world.db, settings, broker) == 5  # the rest: next sweep
    assert _rows(world.db, third)[0][0] == "queued"
    assert expiry.expire_transfers(world.db, settings, broker) == 1
    assert {state for state, _ in _rows(world.db, first + second + third)} == {"failed"}
    # a delivery_failed receipt each; those to one sender (a document's) go together
    carried = [
        len(split_receipts(o.body)) if o.message_type == t.TYPE_RECEIPTS else 1
        for o in broker.others
    ]
    assert sorted(carried) == [1, 2, 3]
