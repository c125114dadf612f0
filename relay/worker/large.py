"""One large document at a time across the relay's worker processes.

Storing a document costs a worker several times its size for a moment: the body as it came,
the attachment's base64 text while it is validated, the decoded bytes whose SHA-256 is checked,
and libpq's buffer for the insert (released with the connection: see
:data:`relay.worker.transaction.RELEASE_CONNECTION_BYTES`). For a 20 MB document a worker's PSS
rose by 65-90 MB (``make bench --scenarios 20MB-fanout95``); three workers each storing one at
once would pay it three times over. So a batch holding a body of
:data:`LARGE_BODY_BYTES` or more waits for its turn, which it keeps until its transaction's
connection is given back; ordinary batches never wait.

The turn is a lock the parent creates before forking its workers (:mod:`.supervisor`); a
single-process relay has none. A worker that waited :data:`TURN_WAIT_SECONDS` goes ahead anyway
and says so (``relay.large_turn_waited``): memory is a bound to keep, not a reason to stall.
"""

from __future__ import annotations

import multiprocessing.synchronize
import threading
import time
from collections.abc import Callable

import structlog

log = structlog.get_logger()

#: A batch holding a body at least this large waits for the turn.
LARGE_BODY_BYTES = 8 * 1024 * 1024
#: How long a worker waits for the turn before going ahead anyway.
TURN_WAIT_SECONDS = 300.0


class LargeTurn:
    """The turn the sibling workers take to store a large document (a lock shared by fork)."""

    def __init__(self, lock: multiprocessing.synchronize.Lock) -> None:
        self._lock = lock
        #: the thread of this process holding the turn: a transaction that merged two large
        #: batches (the urgent lane's, one message each) takes it once, not twice
        self._holder: int | None = None

    @classmethod
    def for_workers(cls) -> LargeTurn:
        """A turn for worker processes forked from this one."""
        return cls(multiprocessing.get_context("fork").Lock())

    def take(self, largest_body: int) -> Callable[[], None] | None:
        """Wait for the turn when ``largest_body`` needs it; returns what gives it back (call it
        exactly once), or None when no turn was needed or it was not had in time."""
        if largest_body < LARGE_BODY_BYTES or self._holder == threading.get_ident():
            return None
        started = time.monotonic()
        if not self._lock.acquire(timeout=TURN_WAIT_SECONDS):
            log.warning(
                "relay.large_turn_waited", seconds=TURN_WAIT_SECONDS, body_bytes=largest_body
            )
            return None
        self._holder = threading.get_ident()
        waited = time.monotonic() - started
        if waited >= 1.0:
            log.info("relay.large_turn_taken", waited_seconds=round(waited, 1))
        return self._give_back

    def _give_back(self) -> None:
        self._holder = None
        self._lock.release()
