"""The relay's database thread: transactions run beside the AMQP ioloop, not inside it.

The ioloop hands over work (a function of a SQLAlchemy ``Connection``) with a callback; this
thread runs everything waiting at that moment in ONE transaction (each piece in a savepoint of
its own is not needed: work that fails with a database error fails the whole transaction, and the
relay then gives the broker everything back), commits, and posts each result back to the ioloop
thread. Meanwhile the ioloop keeps consuming, publishing and settling confirms, so the database's
round trips and commit fsyncs overlap with the broker's, and a busy database merges several
batches (and their ``queued`` updates) into one commit.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

import structlog
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

log = structlog.get_logger()

Work = Callable[[Connection], Any]
Done = Callable[[Any], None]
Post = Callable[[Callable[[], None]], None]

#: At most this many pieces of work share one transaction.
MAX_MERGED = 16


class DbThread:
    def __init__(
        self,
        engine: Engine,
        post: Post,
        on_error: Callable[[str], None],
        name: str = "lienthong-relay-db",
    ) -> None:
        self._engine = engine
        self._post = post
        self._on_error = on_error
        self._queue: queue.Queue[tuple[Work, Done] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.failed = False

    def start(self) -> None:
        self._thread.start()

    def submit(self, work: Work, done: Done) -> None:
        self._queue.put((work, done))

    def stop(self, timeout: float = 30.0) -> None:
        """Finish what was submitted, then end the thread."""
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
            try:
                with self._engine.begin() as conn:
                    results = [(done, work(conn)) for work, done in jobs]
            except SQLAlchemyError as e:
                self.failed = True
                self._post(_bind(self._on_error, f"database: {e}"))
            except Exception as e:  # a bug: log it, give the messages back, reconnect
                log.exception("relay.db_work_failed")
                self.failed = True
                self._post(_bind(self._on_error, f"internal error: {e!r}"))
            else:
                for done, result in results:
                    self._post(_bind(done, result))
            if ending:
                return


def _bind(done: Done, result: Any) -> Callable[[], None]:
    return lambda: done(result)
