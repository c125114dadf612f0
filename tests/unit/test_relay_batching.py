"""When the relay's worker hands gathered outbox messages to the database thread
(:mod:`relay.worker.batching`): the loop's own state driven by hand, the ioloop and the
database threads replaced by recorders, no services."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pika.spec
import pytest
from sqlalchemy import create_engine

from relay.config import Settings
from relay.worker.dbthread import DbThread
from relay.worker.loop import RelayLoop


class RecordedIoloop:
    """The ioloop's timers, recorded instead of run."""

    def __init__(self) -> None:
        self.timers: list[tuple[float, Callable[[], None]]] = []

    def call_later(self, delay: float, callback: Callable[[], None]) -> object:
        self.timers.append((delay, callback))
        return callback

    def waits(self) -> list[float]:
        return [delay for delay, _ in self.timers]

    def remove_timeout(self, timer: object) -> None:
        pass


class RecordedConnection:
    def __init__(self) -> None:
        self.ioloop = RecordedIoloop()


class RecordedDbThread(DbThread):
    """A database thread that keeps the work handed to it instead of running it."""

    def __init__(self) -> None:
        self.submitted: list[tuple[Any, Any]] = []

    def submit(self, work: Any, done: Any) -> None:
        self.submitted.append((work, done))


@pytest.fixture
def loop() -> RelayLoop:
    settings = Settings(batch_size=250, batch_wait_ms=20)
    lp = RelayLoop(settings, create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none"))
    lp._conn = RecordedConnection()  # type: ignore[assignment]
    lp._db = RecordedDbThread()
    lp._db_queued = RecordedDbThread()
    lp._owned = {"000.00.00.G22"}
    lp._prefetch = settings.prefetch  # grown already: no pause and regrow on the first message
    return lp


def _ioloop(lp: RelayLoop) -> RecordedIoloop:
    conn: object = lp._conn
    assert isinstance(conn, RecordedConnection)
    ioloop: RecordedIoloop = conn.ioloop
    return ioloop


def _stored(lp: RelayLoop) -> int:
    assert isinstance(lp._db, RecordedDbThread)
    return len(lp._db.submitted)


def _arrive(lp: RelayLoop, tag: int) -> None:
    lp._on_message(
        "lienthong.outbox.000.00.00.G22",
        "000.00.00.G22",
        pika.spec.Basic.Deliver(delivery_tag=tag),
        pika.spec.BasicProperties(message_id=f"m-{tag}", user_id="000.00.00.G22", type="document"),
        b"{}",
    )


def test_an_idle_database_takes_what_this_turn_of_the_ioloop_brought(loop: RelayLoop) -> None:
    _arrive(loop, 1)
    assert _ioloop(loop).waits() == [0.0]
    _ioloop(loop).timers[0][1]()
    assert _stored(loop) == 1


def test_confirms_being_recorded_do_not_hold_the_next_batch(loop: RelayLoop) -> None:
    """Recording a batch's confirms runs on the other database thread, on a connection of its
    own: the next message does not wait ``batch_wait_ms`` for it (a fan-out document at 36 a
    second waited up to 20 ms, 5.4 ms on average, behind the previous one's record)."""
    loop._jobs = 1  # a confirmed batch being recorded `queued` (Publishing._complete)
    _arrive(loop, 1)
    assert _ioloop(loop).waits() == [0.0]
    _ioloop(loop).timers[0][1]()
    assert _stored(loop) == 1


def test_a_batch_in_the_database_keeps_the_next_one_gathering(loop: RelayLoop) -> None:
    _arrive(loop, 1)
    _ioloop(loop).timers.pop()[1]()
    assert _stored(loop) == 1
    _arrive(loop, 2)  # the first is being stored: this one gathers for batch_wait_ms
    assert _ioloop(loop).waits() == [0.02]
    _ioloop(loop).timers.pop()[1]()
    assert _stored(loop) == 1, "went while the database was still on the first batch"
