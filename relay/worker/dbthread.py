"""The relay's database thread: transactions run beside the AMQP ioloop, not inside it.

The ioloop hands over work (a function of a SQLAlchemy ``Connection``) with a callback; this
thread runs everything waiting at that moment in ONE transaction, commits, and posts each result
back to the ioloop thread. Meanwhile the ioloop keeps consuming, publishing and settling
confirms, so the database's round trips and commit fsyncs overlap with the broker's, and a busy
database merges several batches (and their ``queued`` updates) into one commit.

What a failure does (issue 12 item 10), decided in :func:`classify`:

- **PostgreSQL unreachable** (a lost or refused connection): the transaction was rolled back,
  so the same work is run again once the database answers. The thread waits with exponential
  backoff (tenacity, ``WAIT_FIRST_SECONDS`` doubling up to ``WAIT_MAX_SECONDS``; it stops only
  when the relay stops), logs ``relay.database_down`` once and ``relay.database_back`` once.
  The broker connection and every unacked outbox message are kept: nothing is requeued, so a
  quorum queue counts no redelivery, and the relay does not reconnect to RabbitMQ in a loop.
- **Deadlock or serialization failure**: the transaction is run again at once (a few times,
  with a short jittered pause); it is not a lost connection.
- **Anything else** (a bug, or data the database refuses that no savepoint caught): the
  connection is abandoned and the broker takes every unacked message back, as before.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from enum import Enum
from typing import Any

import structlog
from psycopg import errors as pg_errors
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random_exponential,
)

from relay.errors import LienthongError, TransientError

log = structlog.get_logger()

Work = Callable[[Connection], Any]
Done = Callable[[Any], None]
Post = Callable[[Callable[[], None]], None]

#: Set ``conn.info[RELEASE_CONNECTION] = True`` in a piece of work to have its database
#: connection closed (and a fresh one opened for the next) once the transaction committed.
RELEASE_CONNECTION = "lienthong_release_connection"
#: At most this many pieces of work share one transaction.
MAX_MERGED = 16
#: What the work of the transaction running on this thread asked to run once its connection is
#: given back (see :func:`when_connection_released`); None outside such a transaction.
_after_release = threading.local()
#: Waiting for PostgreSQL to come back: first pause and cap (seconds).
WAIT_FIRST_SECONDS = 0.5
WAIT_MAX_SECONDS = 10.0
#: A deadlocked or serialization-failed transaction is run again this many times at most.
CONFLICT_ATTEMPTS = 5


class Failure(Enum):
    UNREACHABLE = "unreachable"  # wait for the database, then run the same work again
    CONFLICT = "conflict"  # deadlock / serialization failure: run the transaction again
    FATAL = "fatal"  # give the messages back (abandon the connection)


def classify(error: BaseException) -> Failure:
    """What a database error means for the work that raised it."""
    orig = error.orig if isinstance(error, DBAPIError) else None
    if isinstance(orig, pg_errors.DeadlockDetected | pg_errors.SerializationFailure):
        return Failure.CONFLICT
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return Failure.UNREACHABLE
    if isinstance(orig, pg_errors.OperationalError) and not isinstance(
        orig,
        pg_errors.QueryCanceled,  # statement timeout: the work itself is at fault
    ):
        return Failure.UNREACHABLE
    if isinstance(error, OperationalError | InterfaceError) and orig is None:
        return Failure.UNREACHABLE
    return Failure.FATAL


class _Conflict(TransientError):
    pass


class DatabaseHealth:
    """Whether PostgreSQL answers, shared by a relay's database threads so that an outage is
    logged once (``relay.database_down``) and its end once (``relay.database_back``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.down = False

    def went_down(self, error: BaseException) -> None:
        with self._lock:
            if self.down:
                return
            self.down = True
        log.warning("relay.database_down", error=_first_line(error))

    def came_back(self) -> None:
        with self._lock:
            if not self.down:
                return
            self.down = False
        log.warning("relay.database_back")


class DbThread:
    def __init__(
        self,
        engine: Engine,
        post: Post,
        on_error: Callable[[str], None],
        name: str = "lienthong-relay-db",
        health: DatabaseHealth | None = None,
    ) -> None:
        self._engine = engine
        self._health = health or DatabaseHealth()
        self._post = post
        self._on_error = on_error
        self._queue: queue.Queue[tuple[Work, Done] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._stopping = threading.Event()
        self.failed = False
        #: True while PostgreSQL is unreachable (read by the ioloop for logs and tests)
        self.waiting = False

    def start(self) -> None:
        self._thread.start()

    def submit(self, work: Work, done: Done) -> None:
        self._queue.put((work, done))

    def stop(self, timeout: float = 30.0) -> None:
        """Finish what was submitted (unless the database is down), then end the thread."""
        self._stopping.set()
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            jobs = [first]
            ending = False
            while len(jobs) < MAX_MERGED:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    ending = True
                    break
                jobs.append(nxt)
            if self.failed:
                # The connection is being abandoned: its messages go back to the broker.
                if ending:
                    return
                continue
            results = self._transaction(jobs)
            if results is not None:
                for done, result in results:
                    self._post(_bind(done, result))
            if ending:
                return

    def _transaction(self, jobs: list[tuple[Work, Done]]) -> list[tuple[Done, Any]] | None:
        """Run ``jobs`` in one transaction until it commits; None if given up."""
        while True:
            try:
                return self._with_conflict_retries(jobs)
            except _Conflict as e:
                self._give_up(f"database: {e.__cause__}")
                return None
            except SQLAlchemyError as e:
                if classify(e) is not Failure.UNREACHABLE:
                    self._give_up(f"database: {e}")
                    return None
                if not self._wait_for_database(e):
                    return None  # stopping while the database is down: messages go back
            except Exception as e:  # a bug: log it, give the messages back, reconnect
                log.exception("relay.db_work_failed")
                self._give_up(f"internal error: {type(e).__name__}: {e}")
                return None

    def _with_conflict_retries(self, jobs: list[tuple[Work, Done]]) -> list[tuple[Done, Any]]:
        conflicts = Retrying(
            retry=retry_if_exception_type(_Conflict),
            wait=wait_random_exponential(multiplier=0.05, max=1.0),
            stop=stop_after_attempt(CONFLICT_ATTEMPTS),
            reraise=True,
        )
        result: list[tuple[Done, Any]] = conflicts(self._once, jobs)
        return result

    def _once(self, jobs: list[tuple[Work, Done]]) -> list[tuple[Done, Any]]:
        _after_release.fns = []
        try:
            with self._engine.connect() as conn:
                with conn.begin():
                    results = [(done, work(conn)) for work, done in jobs]
                if conn.info.pop(RELEASE_CONNECTION, False):
                    # libpq keeps its buffers as large as the largest statement it sent (a
                    # batch of big documents): the connection goes, and the memory with it.
                    conn.invalidate()
                return results
        except SQLAlchemyError as e:
            if classify(e) is Failure.CONFLICT:
                log.info("relay.transaction_conflict", error=_first_line(e))
                raise _Conflict() from e
            raise
        finally:
            fns, _after_release.fns = _after_release.fns, None
            for fn in fns:
                try:
                    fn()
                except Exception:
                    log.exception("relay.after_release_failed")

    def _wait_for_database(self, error: SQLAlchemyError) -> bool:
        """Back off until PostgreSQL answers; False if the relay stops meanwhile."""
        self.waiting = True
        self._health.went_down(error)
        waiting = Retrying(
            retry=retry_if_exception_type(SQLAlchemyError),
            wait=wait_exponential(multiplier=WAIT_FIRST_SECONDS, max=WAIT_MAX_SECONDS),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            for attempt in waiting:
                with attempt:
                    if self._stopping.is_set():
                        return False
                    with self._engine.connect() as conn:
                        conn.execute(text("SELECT 1"))
        except _Stopping:
            return False
        self.waiting = False
        self._health.came_back()
        return True

    def _sleep(self, seconds: float) -> None:
        if self._stopping.wait(seconds):
            raise _Stopping()

    def _give_up(self, why: str) -> None:
        self.failed = True
        self._post(_bind(self._on_error, why))


class _Stopping(LienthongError):
    """The relay stops while waiting for the database."""


def _first_line(error: BaseException) -> str:
    orig = error.orig if isinstance(error, DBAPIError) else None
    lines = str(orig or error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _bind(done: Done, result: Any) -> Callable[[], None]:
    return lambda: done(result)


def when_connection_released(fn: Callable[[], None]) -> bool:
    """Have ``fn`` run once the transaction running on this database thread has given its
    connection back, committed or not (a large document's turn is kept until then, libpq's
    buffer included: :mod:`relay.worker.large`). False when no :class:`DbThread` transaction
    runs on this thread: the caller then runs ``fn`` itself when it is done."""
    pending: list[Callable[[], None]] | None = getattr(_after_release, "fns", None)
    if pending is None:
        return False
    pending.append(fn)
    return True
