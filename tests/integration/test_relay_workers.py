"""Several relay worker processes (``LIENTHONG_WORKERS``): the outboxes shared out by
``relay.worker.partition``, one supervisor parent, against real services."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import psutil
import pytest
from sqlalchemy import Engine, select

from relay.broker.management import ManagementClient
from relay.config import Settings
from relay.db.tables import deliveries, documents, events
from relay.worker.partition import Partition
from schemas import topology as t
from tests.relay_support import (
    Agency,
    Received,
    RelayProcess,
    add_agency,
    drain,
    make_document,
    make_status,
    publish,
    publish_many,
    wait_until,
)
from tests.services import random_code

pytestmark = pytest.mark.integration

#: Documents each sender submits in the routing test.
PER_SENDER = 50


# -- helpers ----------------------------------------------------------------------------


def _codes(per_worker: int, count: int) -> list[list[str]]:
    """Random agency codes, ``per_worker`` of them owned by each of ``count`` workers."""
    out: list[list[str]] = [[] for _ in range(count)]
    for _ in range(1000 * per_worker * count):
        code = random_code()
        for i, codes in enumerate(out):
            if Partition(i, count).owns(code) and len(codes) < per_worker:
                codes.append(code)
                break
        if all(len(codes) == per_worker for codes in out):
            return out
    raise AssertionError(f"random codes never fill every worker's share: {out}")


def _log_events(relay: RelayProcess, event: str) -> list[dict[str, Any]]:
    """The relay log's JSON lines of one event (every process writes to the same file)."""
    found = []
    for line in relay.log_text().splitlines():
        if f'"{event}"' in line:
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if record.get("event") == event:
                    found.append(record)
    return found


def _start(settings: Settings, workers: int) -> RelayProcess:
    """A relay with ``workers`` processes, returned once every one of them is connected."""
    relay = RelayProcess(settings.model_copy(update={"workers": workers}))
    try:
        relay.start(timeout=30)
        expected = sorted(str(Partition(i, workers)) for i in range(workers))
        wait_until(
            lambda: (
                sorted(r.get("worker", "") for r in _log_events(relay, "relay.started")) == expected
            ),
            timeout=30,
        )
    except BaseException:
        relay.stop()
        raise
    return relay


def _connected(
    settings: Settings, db: Engine, relay: RelayProcess, codes: list[str]
) -> list[Agency]:
    agencies = [add_agency(settings, db, code) for code in codes]
    relay.wait_consuming(codes, timeout=30)
    return agencies


def _states(db: Engine, message_ids: list[str]) -> list[str]:
    with db.connect() as conn:
        rows = conn.execute(
            select(deliveries.c.state)
            .join(documents, documents.c.id == deliveries.c.document_pk)
            .where(documents.c.message_id.in_(message_ids))
        ).all()
    return [state for (state,) in rows]


def _delivery_state(db: Engine, message_id: str, recipient: str) -> str:
    with db.connect() as conn:
        return str(
            conn.execute(
                select(deliveries.c.state)
                .join(documents, documents.c.id == deliveries.c.document_pk)
                .where(documents.c.message_id == message_id, deliveries.c.recipient == recipient)
            ).scalar_one()
        )


def _all_queued(db: Engine, message_ids: list[str]) -> bool:
    states = _states(db, message_ids)
    return len(states) == len(message_ids) and set(states) == {"queued"}


def _split(received: list[Received]) -> tuple[list[Received], list[dict[str, Any]]]:
    """An inbox's document copies, and its receipts (decoded)."""
    copies = [m for m in received if m.type == t.TYPE_DOCUMENT]
    receipts = [json.loads(m.body) for m in received if m.type == t.TYPE_RECEIPT]
    assert len(copies) + len(receipts) == len(received), [m.type for m in received]
    return copies, receipts


def _outboxes_settled(
    management: ManagementClient, vhost: str, codes: list[str], published: int
) -> dict[str, tuple[Any, ...]] | None:
    """None once every outbox shows nothing ready and nothing unacked, in statistics recent
    enough to count ``published`` acks (older statistics show an empty queue too); otherwise
    what each outbox shows. (The queue's ``publish`` count is no guide: it goes with the
    publishing channel's statistics, which the broker may drop once that channel closes.)"""
    seen: dict[str, tuple[Any, ...]] = {}
    for code in codes:
        q = management.get_queue(vhost, t.outbox_queue(code)) or {}
        stats = q.get("message_stats") or {}
        seen[code] = (
            q.get("messages_ready"),
            q.get("messages_unacknowledged"),
            stats.get("publish"),
            stats.get("ack"),
        )
    done = all(
        ready == 0 and unacked == 0 and (acks or 0) >= published
        for ready, unacked, _publish, acks in seen.values()
    )
    return None if done else seen


def _wait_outboxes_settled(
    management: ManagementClient, vhost: str, codes: list[str], published: int, relay: RelayProcess
) -> None:
    # The management API's counts come from statistics the broker emits every few seconds.
    deadline = time.monotonic() + 20
    last = _outboxes_settled(management, vhost, codes, published)
    while last is not None and time.monotonic() < deadline:
        assert relay.running(), relay.log_text()
        time.sleep(0.2)
        last = _outboxes_settled(management, vhost, codes, published)
    assert last is None, f"outboxes not all acked (ready, unacked, publish, ack): {last}"


def _workers_of(relay: RelayProcess) -> list[psutil.Process]:
    """The worker processes, in worker order (1/N first), as the parent logged their pids."""
    assert relay.proc is not None
    record = wait_until(lambda: _log_events(relay, "relay.workers_started"), timeout=10)[0]
    children = {p.pid: p for p in psutil.Process(relay.proc.pid).children(recursive=True)}
    assert all(pid in children for pid in record["pids"]), (record, children)
    return [children[pid] for pid in record["pids"]]


def _exit_status(relay: RelayProcess, timeout: float) -> int:
    assert relay.proc is not None
    try:
        return relay.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(
            f"the relay still runs after {timeout}s:\n{relay.log_text()}"
        ) from None


def _left_alive(procs: list[psutil.Process], timeout: float = 5.0) -> list[psutil.Process]:
    """Those of ``procs`` still running after ``timeout`` (a zombie nobody reaped yet is gone:
    it runs no code and holds no connection)."""

    def alive() -> list[psutil.Process]:
        out = []
        for p in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    out.append(p)
        return out

    deadline = time.monotonic() + timeout
    while (left := alive()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def _terminate(relay: RelayProcess) -> None:
    """SIGTERM to the parent: it exits 0 within 30 s and leaves no process behind."""
    assert relay.proc is not None
    family = psutil.Process(relay.proc.pid).children(recursive=True)
    assert family, "the relay has no worker processes"
    relay.proc.send_signal(signal.SIGTERM)
    assert _exit_status(relay, 30) == 0, relay.log_text()
    assert _left_alive(family) == []


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def relay2(relay_env: Settings) -> Iterator[RelayProcess]:
    """Two worker processes on the module's environment, for the tests after the one that runs
    relays of its own there (so that none of those runs beside it); the last test stops it."""
    relay = _start(relay_env, 2)
    try:
        yield relay
    finally:
        relay.stop()


# -- a relay of its own: a worker dies -------------------------------------------------


def test_a_worker_killed_stops_the_relay_and_a_restart_delivers_what_came_meanwhile(
    relay_env: Settings, db: Engine
) -> None:
    by_worker = _codes(1, 2)
    relay = _start(relay_env, 2)
    try:
        a, b = _connected(relay_env, db, relay, [by_worker[0][0], by_worker[1][0]])
        workers = _workers_of(relay)
        assert relay.proc is not None
        family = psutil.Process(relay.proc.pid).children(recursive=True)

        workers[0].send_signal(signal.SIGKILL)  # the first, which also runs the retry worker

        assert _exit_status(relay, 30) != 0, relay.log_text()
        assert _left_alive(family) == []
        exited = _log_events(relay, "relay.worker_exited")
        assert [r["worker"] for r in exited] == ["lienthong-relay-1"], exited
    finally:
        relay.stop()

    # Sent while no relay runs: both directions, so both workers of the next relay have work.
    ab = publish_many(a, [make_document(a.code, [b.code], size=512) for _ in range(20)])
    ba = publish_many(b, [make_document(b.code, [a.code], size=512) for _ in range(20)])
    again = _start(relay_env, 2)
    try:
        wait_until(lambda: _all_queued(db, ab + ba), timeout=30, interval=0.1)
        for agency, incoming, own in ((a, ba, ab), (b, ab, ba)):
            copies, receipts = _split(drain(agency, expect=2 * len(incoming), timeout=20))
            assert sorted(m.headers["x-lienthong-submission-id"] for m in copies) == sorted(
                incoming
            )
            assert sorted(r["in_reply_to"] for r in receipts) == sorted(own)
        for agency in (a, b):
            assert drain(agency, timeout=1, quiet=0.2) == []
        _terminate(again)
    finally:
        again.stop()


# -- with ``relay2``: routing, then stopping it ---------------------------------------------


def test_every_document_arrives_once_and_every_outbox_is_fully_acked(
    relay_env: Settings, db: Engine, relay2: RelayProcess, management: ManagementClient
) -> None:
    by_worker = _codes(2, 2)  # two agencies owned by each of two workers (either way)
    codes = [c for pair in zip(*by_worker, strict=True) for c in pair]  # alternating owners
    agencies = _connected(relay_env, db, relay2, codes)
    # Each outbox is consumed by the worker owning it, and by no other.
    consumers: dict[str, set[str]] = {}
    for r in _log_events(relay2, "relay.outbox_consumed"):
        if r["agency"] in codes:
            consumers.setdefault(r["agency"], set()).add(str(r.get("worker")))
    assert consumers == {c: {"1/2" if Partition(0, 2).owns(c) else "2/2"} for c in codes}

    # A ring: each agency sends to the next, so every worker has senders and recipients
    # that belong to the other one.
    sent: dict[str, list[str]] = {}
    for n, a in enumerate(agencies):
        to = agencies[(n + 1) % len(agencies)]
        docs = [make_document(a.code, [to.code], size=512) for _ in range(PER_SENDER)]
        sent[a.code] = publish_many(a, docs)
    all_ids = [mid for ids in sent.values() for mid in ids]

    wait_until(lambda: _all_queued(db, all_ids), timeout=30, interval=0.1)
    for n, a in enumerate(agencies):
        sender = agencies[n - 1]
        copies, receipts = _split(drain(a, expect=2 * PER_SENDER, timeout=20))
        submissions = [m.headers["x-lienthong-submission-id"] for m in copies]
        assert sorted(submissions) == sorted(sent[sender.code]), a.code  # each once
        assert {m.headers["x-lienthong-recipient"] for m in copies} == {a.code}
        assert len({m.message_id for m in copies}) == PER_SENDER
        assert sorted(r["in_reply_to"] for r in receipts) == sorted(sent[a.code])
        assert {r["kind"] for r in receipts} == {"accepted"}

    # The relay still runs: one multiple ack per run must have covered every message.
    _wait_outboxes_settled(management, relay_env.vhost, codes, PER_SENDER, relay2)
    assert relay2.running(), relay2.log_text()
    for a in agencies:
        assert drain(a, timeout=1, quiet=0.2) == [], a.code  # nothing twice
    assert _all_queued(db, all_ids)


def test_statuses_from_a_recipient_of_the_other_worker_move_the_delivery_in_order(
    relay_env: Settings, db: Engine, relay2: RelayProcess
) -> None:
    (first, second) = _codes(1, 2)
    a0, a1 = _connected(relay_env, db, relay2, [first[0], second[0]])
    for sender, recipient in ((a0, a1), (a1, a0)):
        doc = make_document(sender.code, [recipient.code])
        mid = publish(sender, doc)
        assert len(drain(recipient, expect=1)) == 1
        assert json.loads(drain(sender, expect=1)[0].body)["kind"] == "accepted"

        for code, state in (("01", "delivered"), ("03", "accepted")):
            publish(recipient, make_status(recipient.code, sender.code, doc.document_id, code))
            forwarded = drain(sender, expect=1)
            assert [json.loads(m.body)["status_code"] for m in forwarded] == [code]
            assert json.loads(drain(recipient, expect=1)[0].body)["kind"] == "accepted"
            assert _delivery_state(db, mid, recipient.code) == state

        with db.connect() as conn:
            recorded = conn.execute(
                select(events.c.status_code)
                .join(documents, documents.c.id == events.c.document_pk)
                .where(documents.c.message_id == mid, events.c.kind == "status")
                .order_by(events.c.id)
            ).all()
        assert [code for (code,) in recorded] == ["01", "03"]


def test_only_the_first_worker_starts_the_retry_worker(relay2: RelayProcess) -> None:
    wait_until(lambda: _log_events(relay2, "retry.worker_started"), timeout=10)
    time.sleep(0.5)  # a second one, if any, would come at about the same time
    started = _log_events(relay2, "retry.worker_started")
    assert len(started) == 1, started
    assert sorted(r["worker"] for r in _log_events(relay2, "relay.started")) == ["1/2", "2/2"]


def test_the_retry_worker_logs_as_the_first_worker(relay2: RelayProcess) -> None:
    started = wait_until(lambda: _log_events(relay2, "retry.worker_started"), timeout=10)
    assert started[0].get("worker") == "1/2", started


def test_sigterm_to_the_parent_stops_every_worker_and_exits_0(relay2: RelayProcess) -> None:
    """Last: it stops the module's relay."""
    assert len(_workers_of(relay2)) == 2
    _terminate(relay2)
    assert len(_log_events(relay2, "relay.stopped")) == 2  # each worker stopped cleanly
    assert _log_events(relay2, "relay.worker_exited") == []
    assert len(_log_events(relay2, "relay.workers_stopped")) == 1
