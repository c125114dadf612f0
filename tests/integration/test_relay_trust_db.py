"""Issue 12, the relay's rules against a real PostgreSQL (no broker needed): batches handled by
:class:`relay.worker.process.BatchProcessor`, the retry schedule and resend with fake
publishers (subclass-free callables: the port is ``PublishFn``)."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select, text, update
from sqlalchemy.exc import OperationalError

from relay.config import Settings
from relay.db.engine import make_engine
from relay.db.tables import agencies, deliveries, documents, events, receipts, rejections
from relay.domain.intake import Envelope
from relay.domain.outgoing import Outgoing
from relay.retry import schedule
from relay.retry.amqp import Unroutable
from relay.retry.resend import resend
from relay.setup import ensure_database, migrate_database
from relay.worker.process import BatchProcessor, Handled, Inbound
from schemas import encode_message
from schemas import topology as t
from tests.relay_support import make_document, make_status
from tests.services import Services, random_code, unique_name

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def db_url(services: Services) -> Iterator[str]:
    """A migrated database of this module's own (no broker: these rules need none)."""
    name = unique_name("lienthong_trust")
    url = services.database_url_for(name)
    ensure_database(url)
    eng = make_engine(url)
    migrate_database(eng)
    eng.dispose()
    yield url
    admin = make_engine(services.database_url_for("postgres"))
    with admin.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="module")
def db(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture(scope="module")
def settings(db_url: str) -> Settings:
    return Settings(database_url=db_url, retry_max_attempts=3, retry_base_seconds=0.01)


def _agencies(db: Engine, n: int) -> list[str]:
    codes = [random_code() for _ in range(n)]
    with db.begin() as conn:
        conn.execute(
            insert(agencies),
            [{"code": c, "name": f"Cơ quan {c}", "strict_code": True} for c in codes],
        )
    return codes


def _inbound(
    owner: str,
    body: bytes,
    message_type: str,
    *,
    message_id: str | None = None,
    user_id: str | None = None,
) -> Inbound:
    return Inbound(
        tag=1,
        queue=t.outbox_queue(owner),
        envelope=Envelope(
            owner=owner,
            message_id=message_id or str(uuid.uuid4()),
            user_id=user_id or owner,
            message_type=message_type,
            body=body,
        ),
        properties=lambda: {"headers": {}},
    )


def _doc(owner: str, recipients: list[str], **kw: Any) -> tuple[Inbound, str]:
    doc = make_document(owner, recipients, **kw)
    return _inbound(owner, encode_message(doc), t.TYPE_DOCUMENT), doc.document_id


def _status(
    owner: str, addressee: str, document_id: str, code: str, message_id: str | None = None
) -> Inbound:
    st = make_status(owner, addressee, document_id, code)
    return _inbound(owner, encode_message(st), t.TYPE_STATUS, message_id=message_id)


def _run(db: Engine, *batch: Inbound) -> list[Handled]:
    with db.begin() as conn:
        return BatchProcessor(conn, 1024 * 1024).run(list(batch))


def _state(db: Engine, submission: Inbound, recipient: str) -> str:
    with db.connect() as conn:
        return str(
            conn.execute(
                select(deliveries.c.state)
                .join(documents, documents.c.id == deliveries.c.document_pk)
                .where(
                    documents.c.message_id == submission.envelope.message_id,
                    documents.c.submitted_by == submission.envelope.owner,
                    deliveries.c.recipient == recipient,
                )
            ).scalar_one()
        )


def _routes(h: Handled) -> list[tuple[str, str]]:
    return [(p.outgoing.route_to, p.outgoing.message_type) for p in h.publishes]


# -- item 3 ------------------------------------------------------------------------------


@pytest.mark.hostile
def test_05_13_13_16_leaves_the_delivery_processing(db: Engine) -> None:
    a, c = _agencies(db, 2)
    sub, doc_id = _doc(a, [c])
    _run(db, sub)
    for owner, to, code in [(c, a, "05"), (a, c, "13"), (a, c, "13")]:
        _run(db, _status(owner, to, doc_id, code))
    assert _state(db, sub, c) == "recall_requested"

    _run(db, _status(c, a, doc_id, "16"))

    assert _state(db, sub, c) == "processing"


@pytest.mark.hostile
def test_progress_reported_during_a_refused_take_back_is_kept(db: Engine) -> None:
    a, c = _agencies(db, 2)
    sub, doc_id = _doc(a, [c])
    _run(db, sub)
    for owner, to, code in [(c, a, "03"), (a, c, "13"), (c, a, "06"), (c, a, "16")]:
        _run(db, _status(owner, to, doc_id, code))
    assert _state(db, sub, c) == "completed"


# -- item 1 ------------------------------------------------------------------------------


@pytest.mark.hostile
def test_a_nul_in_the_message_id_is_rejected_and_stored_not_a_database_error(
    db: Engine,
) -> None:
    a, b = _agencies(db, 2)
    doc = make_document(a, [b])
    poison = _inbound(a, encode_message(doc), t.TYPE_DOCUMENT, message_id="poison\x00id")

    [h] = _run(db, poison)

    assert h.outcome == "rejected" and _routes(h) == [(a, t.TYPE_RECEIPT)]
    with db.connect() as conn:
        row = conn.execute(select(rejections).where(rejections.c.queue == t.outbox_queue(a))).one()
    assert "NUL" in row.reason and row.body == encode_message(doc)


# -- item 2 ------------------------------------------------------------------------------


@pytest.mark.hostile
def test_a_message_in_anothers_outbox_is_answered_to_its_publisher_never_to_the_owner(
    db: Engine,
) -> None:
    a, b = _agencies(db, 2)
    doc = make_document(a, [a])
    found_in_b = _inbound(b, encode_message(doc), t.TYPE_DOCUMENT, user_id=a)

    [h] = _run(db, found_in_b)

    assert h.outcome == "rejected"
    assert _routes(h) == [(a, t.TYPE_RECEIPT)]  # A is told, B is not
    with db.connect() as conn:
        to_b = conn.execute(select(receipts.c.id).where(receipts.c.agency == b)).all()
        kept = conn.execute(
            select(rejections.c.user_id).where(rejections.c.queue == t.outbox_queue(b))
        ).all()
    assert to_b == [] and kept == [(a,)]


# -- item 4 ------------------------------------------------------------------------------


@pytest.mark.hostile
def test_a_status_with_another_agencys_submission_id_gets_an_id_of_its_own(db: Engine) -> None:
    a, b, c = _agencies(db, 3)
    sub_a, _ = _doc(a, [b, c])
    [ha] = _run(db, sub_a)
    copy_to_b = next(p.outgoing.message_id for p in ha.publishes if p.outgoing.route_to == b)
    sub_b, doc_b = _doc(b, [c])
    _run(db, sub_b)

    [hs] = _run(db, _status(c, b, doc_b, "03", message_id=sub_a.envelope.message_id))

    forwarded = [p.outgoing for p in hs.publishes if p.outgoing.message_type == t.TYPE_STATUS]
    assert len(forwarded) == 1 and forwarded[0].route_to == b
    assert forwarded[0].message_id != copy_to_b


@pytest.mark.hostile
def test_a_status_id_reused_by_another_agency_does_not_swallow_the_real_status(
    db: Engine,
) -> None:
    a, b, c = _agencies(db, 3)
    sub, doc_id = _doc(a, [b, c])
    _run(db, sub)
    chosen = str(uuid.uuid4())

    _run(db, _status(c, a, doc_id, "01", message_id=chosen))
    [hb] = _run(db, _status(b, a, doc_id, "01", message_id=chosen))

    assert hb.outcome == "accepted"
    assert _state(db, sub, b) == "delivered"


# -- item 8 ------------------------------------------------------------------------------


@pytest.mark.hostile
def test_only_the_sender_may_revoke_its_document(db: Engine) -> None:
    a, b, c = _agencies(db, 3)
    sub, doc_id = _doc(a, [b])
    _run(db, sub)
    revoke, _ = _doc(
        c, [b], document_id=doc_id, business={"document_id": doc_id, "bussiness_doc_type": 1}
    )

    [h] = _run(db, revoke)

    assert h.outcome == "rejected" and _routes(h) == [(c, t.TYPE_RECEIPT)]
    with db.connect() as conn:
        kinds = {
            k
            for (k,) in conn.execute(
                select(events.c.kind)
                .join(documents, documents.c.id == events.c.document_pk)
                .where(documents.c.message_id == sub.envelope.message_id)
            )
        }
    assert "revoked" not in kinds


# -- items 6 and 12: the retry schedule and resend ----------------------------------------


def _retrying_delivery(db: Engine, *, attempts: int = 0, state: str = "retrying") -> str:
    a, b = _agencies(db, 2)
    sid = str(uuid.uuid4())
    with db.begin() as conn:
        pk = conn.execute(
            insert(documents)
            .values(
                message_id=sid,
                document_id=f"{a},2026/11/30,{uuid.uuid4().hex[:8]}/X",
                business_type=0,
                sender=a,
                submitted_by=a,
                payload=b"{}",
            )
            .returning(documents.c.id)
        ).scalar_one()
        mid = str(uuid.uuid4())
        conn.execute(
            insert(deliveries).values(
                document_pk=pk,
                recipient=b,
                route_to=b,
                message_id=mid,
                state=state,
                attempts=attempts,
                next_attempt_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1),
            )
        )
    return mid


def _locked_elsewhere(db: Engine, message_id: str) -> bool:
    """Is the delivery row locked by another transaction (tried with NOWAIT)?"""
    other = make_engine(str(db.url.render_as_string(hide_password=False)), pool_size=1)
    try:
        with other.begin() as conn:
            conn.execute(
                select(deliveries.c.id)
                .where(deliveries.c.message_id == message_id)
                .with_for_update(nowait=True)
            ).all()
        return False
    except OperationalError:
        return True
    finally:
        other.dispose()


def test_the_retry_schedule_holds_no_row_lock_while_waiting_for_the_confirm(
    db: Engine, settings: Settings
) -> None:
    mid = _retrying_delivery(db)
    locked: list[bool] = []

    def publish(out: Outgoing) -> None:  # the broker "confirming": look at the row meanwhile
        locked.append(_locked_elsewhere(db, mid))

    with db.begin() as conn:  # only this test's row is due
        conn.execute(
            update(deliveries)
            .where(deliveries.c.message_id != mid, deliveries.c.state == "retrying")
            .values(next_attempt_at=None)
        )
    schedule.publish_due(db, settings, publish)

    assert locked == [False]
    with db.connect() as conn:
        state = conn.execute(
            select(deliveries.c.state).where(deliveries.c.message_id == mid)
        ).scalar_one()
    assert state == "queued"


def test_resend_holds_no_row_lock_while_waiting_for_the_confirm(db: Engine) -> None:
    mid = _retrying_delivery(db, attempts=3, state="failed")
    with db.connect() as conn:
        doc_id = conn.execute(
            select(documents.c.document_id)
            .join(deliveries, deliveries.c.document_pk == documents.c.id)
            .where(deliveries.c.message_id == mid)
        ).scalar_one()
    locked: list[bool] = []

    def publish(out: Outgoing) -> None:
        locked.append(_locked_elsewhere(db, mid))

    done = resend(db, doc_id, publish, by="test")

    assert len(done) == 1 and locked == [False]


@pytest.mark.hostile
def test_the_delivery_failed_receipt_of_a_last_unroutable_retry_is_published(
    db: Engine, settings: Settings
) -> None:
    mid = _retrying_delivery(db, attempts=settings.retry_max_attempts - 1)
    with db.begin() as conn:
        conn.execute(
            update(deliveries)
            .where(deliveries.c.message_id != mid, deliveries.c.state == "retrying")
            .values(next_attempt_at=None)
        )
    published: list[Outgoing] = []

    def publish(out: Outgoing) -> None:
        if out.message_type == t.TYPE_DOCUMENT:
            raise Unroutable(f"no inbox takes messages for {out.route_to!r}")
        published.append(out)

    schedule.publish_due(db, settings, publish)

    with db.connect() as conn:
        state = conn.execute(
            select(deliveries.c.state).where(deliveries.c.message_id == mid)
        ).scalar_one()
    assert state == "failed"
    assert [json.loads(o.body)["kind"] for o in published] == ["delivery_failed"]


# -- item 14: words, not a Python repr --------------------------------------------------


def test_a_message_the_relay_cannot_process_is_rejected_in_words_not_a_repr(
    db: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from relay.worker import transaction as transaction_module

    a, b = _agencies(db, 2)
    sub, _ = _doc(a, [b])
    real_run = transaction_module.BatchProcessor.run
    calls: list[int] = []

    def broken_once(self: BatchProcessor, batch: list[Inbound]) -> list[Handled]:
        calls.append(1)
        if len(calls) <= 2:  # the batch, then the message on its own
            raise ValueError("unexpected <Document object at 0x7f00>")
        return real_run(self, batch)

    monkeypatch.setattr(transaction_module.BatchProcessor, "run", broken_once)
    relay = transaction_module.BatchTransaction(settings.max_message_bytes, {}, threading.Lock())
    with db.begin() as conn:
        [h] = relay.run(conn, [sub])

    assert h.outcome == "rejected"
    receipt = json.loads(h.publishes[0].outgoing.body)
    assert "ValueError" not in receipt["reason"] and "0x7f00" not in receipt["reason"]
    assert "reference" in receipt["reason"], receipt["reason"]


# -- issue 14: one large document at a time across the worker processes -------------------


def test_a_large_document_waits_while_a_sibling_worker_stores_one_and_small_ones_never_wait(
    db: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three workers (a database thread and a BatchTransaction each, one turn between them): B's
    large document waits until A's is stored and its connection given back; C's small one
    goes meanwhile. Without the turn, B's would be decoded and stored beside A's."""
    from relay.worker import large as large_module
    from relay.worker import transaction as transaction_module
    from relay.worker.dbthread import DbThread
    from relay.worker.large import LargeTurn

    monkeypatch.setattr(large_module, "LARGE_BODY_BYTES", 20_000)
    a, b, c = _agencies(db, 3)
    big_a, _ = _doc(a, [b], size=30_000)
    big_b, _ = _doc(b, [c], size=30_000)
    small_c, _ = _doc(c, [a])
    entered: list[str] = []
    a_may_go = threading.Event()
    real_run = transaction_module.BatchProcessor.run

    def run(self: BatchProcessor, batch: list[Inbound]) -> list[Handled]:
        owner = batch[0].envelope.owner
        entered.append(owner)
        if owner == a:
            assert a_may_go.wait(30), "the test never let A's batch go"
        return real_run(self, batch)

    monkeypatch.setattr(transaction_module.BatchProcessor, "run", run)
    turn = LargeTurn.for_workers()
    outcomes: dict[str, str] = {}
    lock = threading.Lock()

    def done(owner: str) -> Any:
        def record(handled: list[Handled]) -> None:
            outcomes[owner] = handled[0].outcome or ""

        return record

    def post(fn: Any) -> None:
        with lock:
            fn()

    errors: list[str] = []
    workers = {o: DbThread(db, post, errors.append) for o in (a, b, c)}
    for w in workers.values():
        w.start()
    try:
        for owner, inbound in ((a, big_a), (b, big_b), (c, small_c)):
            tx = transaction_module.BatchTransaction(
                settings.max_message_bytes, {}, threading.Lock(), large_turn=turn
            )
            workers[owner].submit(lambda conn, tx=tx, m=inbound: tx.run(conn, [m]), done(owner))
            if owner == a:
                assert _until(lambda: entered == [a]), entered
        assert _until(lambda: c in outcomes), (entered, outcomes, errors)
        time.sleep(0.5)  # B had time to start, were it not waiting
        assert entered == [a, c] and b not in outcomes, (entered, outcomes)
        a_may_go.set()
        assert _until(lambda: len(outcomes) == 3), (entered, outcomes, errors)
    finally:
        a_may_go.set()
        for w in workers.values():
            w.stop(timeout=10)
    assert errors == []
    assert entered == [a, c, b]
    assert outcomes == {a: "accepted", b: "accepted", c: "accepted"}


def _until(predicate: Any, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())


def test_a_database_error_in_a_batch_is_confined_and_each_message_stored_once(
    db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch runs under one savepoint (:mod:`relay.worker.transaction`); a database error in
    it rolls back to that savepoint, and the batch is handled again one message at a time in
    the same transaction: every document stored once, the failed attempt leaving nothing."""
    from relay.worker import store
    from relay.worker.transaction import BatchTransaction

    a, b = _agencies(db, 2)
    batch = [_inbound(a, encode_message(make_document(a, [b])), t.TYPE_DOCUMENT) for _ in range(3)]
    real = store.insert_documents
    calls: list[int] = []

    def fails_for_the_whole_batch(conn: Any, rows: Any) -> Any:
        calls.append(len(rows))
        found = real(conn, rows)  # written, then the statement after it fails
        if len(rows) > 1:
            conn.exec_driver_sql("SELECT 1 / 0")  # a real error of PostgreSQL's
        return found

    monkeypatch.setattr(store, "insert_documents", fails_for_the_whole_batch)
    with db.connect() as conn, conn.begin():
        handled = BatchTransaction(1024 * 1024, {}, threading.Lock()).run(conn, batch)
    assert calls == [3, 1, 1, 1]
    assert [h.outcome for h in handled] == ["accepted"] * 3
    ids = [m.envelope.message_id for m in batch]
    with db.connect() as conn:
        stored = conn.execute(
            select(documents.c.message_id).where(documents.c.message_id.in_(ids))
        ).scalars()
        assert sorted(stored) == sorted(ids)
