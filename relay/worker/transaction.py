"""One batch on the database thread, inside its transaction: never blocked by one bad apple.

:class:`BatchTransaction` runs :class:`relay.worker.process.BatchProcessor` over a batch in a
savepoint. A database error about this data (not the connection: see
:func:`relay.worker.dbthread.classify`) or a bug is confined to that savepoint; the batch is then
handled message by message, so one bad message is rejected instead of blocking its neighbours
forever. A message the relay cannot process at all is rejected with words and a log reference,
kept, and never retried in a loop (retrying would stall the agency's outbox behind it); if even
that rejection cannot be stored as it is, it is stored bare (raw body and reason, every property
left out).

A batch whose bodies add up to :data:`RELEASE_CONNECTION_BYTES` is stored on a connection closed
afterwards (:data:`relay.worker.dbthread.RELEASE_CONNECTION`). A batch holding a large document
waits for the sibling workers' turn (:mod:`relay.worker.large`) and keeps it until that
connection is given back.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pika.spec
import psycopg
import structlog
from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from relay.deadlines.calendar import Dating
from relay.domain.safe_text import json_safe, raw_of_unsafe
from relay.metrics.hot import observe_batch
from relay.worker.dbthread import (
    RELEASE_CONNECTION,
    Failure,
    classify,
    when_connection_released,
)
from relay.worker.large import LargeTurn
from relay.worker.process import BatchProcessor, Handled, Inbound
from relay.worker.repository import SqlBatchRepository

log = structlog.get_logger()

#: A batch whose bodies add up to this many bytes is stored on a connection closed afterwards:
#: libpq keeps a buffer as large as the largest statement it sent (measured: a 21 MB document
#: kept 20 MB in the worker until the connection closed), which would stay in every worker.
RELEASE_CONNECTION_BYTES = 12 * 1024 * 1024


#: The savepoint a batch is stored under (SQLAlchemy's own, for one message at a time, are
#: ``sa_savepoint_N``). Never released: the commit releases it, one round trip fewer.
BATCH_SAVEPOINT = "lienthong_batch"


def set_batch_savepoint(conn: Connection) -> None:
    """Begin the transaction and set the batch's savepoint in ONE round trip: psycopg's
    pipeline mode sends the ``BEGIN`` it owes and the ``SAVEPOINT`` together (a batch of one
    fan-out document made about nine round trips, three of them for ``BEGIN``, ``SAVEPOINT``
    and ``RELEASE``). A connection the server dropped is reported as SQLAlchemy reports it
    (invalidated), so the database thread waits for PostgreSQL as for any statement."""
    raw: Any = conn.connection.driver_connection
    try:
        with raw.pipeline():
            raw.execute(f"SAVEPOINT {BATCH_SAVEPOINT}")
    except psycopg.OperationalError as e:
        conn.invalidate()
        raise OperationalError(
            f"SAVEPOINT {BATCH_SAVEPOINT}", None, e, connection_invalidated=True
        ) from e


def properties_dict(props: pika.spec.BasicProperties) -> dict[str, Any]:
    """The message's properties as JSON, for a stored rejection: text made safe for ``jsonb``,
    and under ``raw`` the exact bytes (base64) of every value that had to be changed."""
    out: dict[str, Any] = {}
    raw: dict[str, str] = {}
    for name in (
        "message_id",
        "user_id",
        "type",
        "content_type",
        "content_encoding",
        "correlation_id",
        "app_id",
        "timestamp",
        "delivery_mode",
    ):
        value = getattr(props, name, None)
        if value is not None:
            out[name] = json_safe(value)
            raw.update(raw_of_unsafe({name: value}))
    if props.headers:
        out["headers"] = json_safe(props.headers)
        raw.update(raw_of_unsafe({f"headers.{k!s}": v for k, v in props.headers.items()}))
    if raw:
        out["raw"] = raw
    return out


class BatchTransaction:
    """Stores batches on the database thread; ``publishing`` (delivery id -> publishes awaiting
    their confirm, guarded by ``lock``) is shared with the ioloop, which releases the ids."""

    def __init__(
        self,
        max_bytes: int,
        publishing: dict[int, int],
        lock: threading.Lock,
        dating: Dating | None = None,
        large_turn: LargeTurn | None = None,
    ) -> None:
        self.max_bytes = max_bytes
        self._publishing = publishing
        self._publishing_lock = lock
        self._dating = dating
        #: shared with the sibling worker processes: one large document stored at a time
        self._large_turn = large_turn

    def run(self, conn: Connection, batch: list[Inbound]) -> list[Handled]:
        """Runs in the database thread, inside its transaction (see the module's docstring);
        counts every delivery it publishes in ``publishing`` until the ioloop releases it."""
        give_back = None
        if self._large_turn is not None and batch:
            give_back = self._large_turn.take(max(len(m.envelope.body) for m in batch))
        if give_back is not None and when_connection_released(give_back):
            give_back = None  # the database thread gives it back with the connection
        try:
            return self._run(conn, batch)
        finally:
            if give_back is not None:
                give_back()

    def _run(self, conn: Connection, batch: list[Inbound]) -> list[Handled]:
        max_bytes = self.max_bytes
        handled: list[Handled] = []
        started = time.perf_counter()
        if sum(len(m.envelope.body) for m in batch) >= RELEASE_CONNECTION_BYTES:
            conn.info[RELEASE_CONNECTION] = True  # see RELEASE_CONNECTION_BYTES
        set_batch_savepoint(conn)
        try:
            handled = BatchProcessor(
                SqlBatchRepository(conn), max_bytes, self._publishing, self._dating
            ).run(batch)
        except SQLAlchemyError as e:
            if classify(e) is not Failure.FATAL:
                raise  # the database is gone or the transaction conflicted: all of it again
            log.exception("relay.batch_failed", size=len(batch))
            conn.exec_driver_sql(f"ROLLBACK TO SAVEPOINT {BATCH_SAVEPOINT}")
            handled = [self._process_one(conn, m) for m in batch]
        except Exception:
            log.exception("relay.batch_failed", size=len(batch))
            conn.exec_driver_sql(f"ROLLBACK TO SAVEPOINT {BATCH_SAVEPOINT}")
            handled = [self._process_one(conn, m) for m in batch]
        with self._publishing_lock:
            for h in handled:
                for pub in h.publishes:
                    if pub.delivery_id is not None:
                        did = pub.delivery_id
                        self._publishing[did] = self._publishing.get(did, 0) + 1
        observe_batch(len(batch), time.perf_counter() - started)
        return handled

    def _process_one(self, conn: Connection, m: Inbound) -> Handled:
        max_bytes = self.max_bytes
        try:
            with conn.begin_nested():
                repo = SqlBatchRepository(conn)
                return BatchProcessor(repo, max_bytes, self._publishing, self._dating).run([m])[0]
        except SQLAlchemyError as e:
            if classify(e) is not Failure.FATAL:
                raise
            return self._reject_failed(conn, m)
        except Exception:
            return self._reject_failed(conn, m)

    def _reject_failed(self, conn: Connection, m: Inbound) -> Handled:
        """A message the relay could not process: rejected with words, kept, never retried
        (retrying would stall the agency's outbox behind it). The sender gets words, not a
        Python repr; the operator gets the traceback, found by the reference both see."""
        ref = uuid.uuid4().hex[:12]
        log.exception("relay.message_failed", message_id=m.envelope.message_id, ref=ref)
        reason = (
            "the relay could not process this message because of an error on the hub "
            f"(reference {ref}); the hub's operators can look it up in the relay's log. "
            "Send it again with a new message_id, or ask them"
        )
        try:
            return self._store_rejection(conn, m, reason, bare=False)
        except SQLAlchemyError as e:
            if classify(e) is not Failure.FATAL:
                raise
        except Exception:
            pass
        # Even the rejection cannot be stored as it is: keep the raw body and the reason with
        # every property left out, rather than stall the agency's outbox.
        log.exception("relay.rejection_failed", message_id=m.envelope.message_id, ref=ref)
        return self._store_rejection(conn, m, reason, bare=True)

    def _store_rejection(self, conn: Connection, m: Inbound, reason: str, *, bare: bool) -> Handled:
        with conn.begin_nested():
            h = Handled(inbound=m)
            proc = BatchProcessor(SqlBatchRepository(conn), self.max_bytes)
            proc.reject_alone(h, reason, bare=bare)
        return h
