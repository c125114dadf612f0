"""The turn worker processes take to store a large document (relay.worker.large), without
services: small bodies never wait, one holder at a time, and a thread already holding it (a
transaction that merged two large batches) is not made to wait for itself."""

from __future__ import annotations

import threading
import time

import pytest

from relay.worker import large
from relay.worker.large import LARGE_BODY_BYTES, LargeTurn


def test_a_small_body_never_takes_the_turn() -> None:
    turn = LargeTurn.for_workers()
    assert turn.take(LARGE_BODY_BYTES - 1) is None
    give_back = turn.take(LARGE_BODY_BYTES)
    assert give_back is not None
    give_back()


def test_one_holder_at_a_time_and_the_holder_does_not_wait_for_itself() -> None:
    turn = LargeTurn.for_workers()
    give_back = turn.take(LARGE_BODY_BYTES)
    assert give_back is not None
    assert turn.take(LARGE_BODY_BYTES) is None  # same thread, same transaction: already held

    other: list[float] = []

    def sibling() -> None:
        started = time.monotonic()
        back = turn.take(LARGE_BODY_BYTES)
        other.append(time.monotonic() - started)
        assert back is not None
        back()

    t = threading.Thread(target=sibling)
    t.start()
    time.sleep(0.3)
    assert other == []  # the sibling waits while the turn is held
    give_back()
    t.join(5)
    assert len(other) == 1 and other[0] >= 0.25


def test_a_worker_that_waited_too_long_goes_ahead_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import structlog

    monkeypatch.setattr(large, "TURN_WAIT_SECONDS", 0.1)
    turn = LargeTurn.for_workers()
    held = threading.Event()
    release = threading.Event()

    def holder() -> None:
        back = turn.take(LARGE_BODY_BYTES)
        assert back is not None
        held.set()
        release.wait(5)
        back()

    t = threading.Thread(target=holder)
    t.start()
    assert held.wait(5)
    with structlog.testing.capture_logs() as logs:
        assert turn.take(LARGE_BODY_BYTES) is None
    release.set()
    t.join(5)
    assert [e["event"] for e in logs] == ["relay.large_turn_waited"]
