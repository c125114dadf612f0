"""The relay's periodic operations jobs: Decree 30 deadlines and retention.

One thread in the leader worker (``run_relay`` starts it, like the retry worker), with its own
engine and its own AMQP connection (opened when a notice has to go out). A failing pass is
logged and tried again at the next tick; the jobs keep their state in PostgreSQL, so a stop at
any point loses nothing.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence

import pika
import structlog
from pika.adapters.blocking_connection import BlockingChannel
from sqlalchemy import Engine

from relay.config import Settings
from relay.deadlines.job import DeadlineJob
from relay.domain import receipt_groups
from relay.domain.outgoing import Outgoing
from relay.retry import amqp

log = structlog.get_logger()


class ReceiptPublisher:
    """Publishes receipts with confirms on a connection opened on first use. With
    ``group_receipts`` the receipts to one agency go as one ``lienthong.receipts/1`` message
    (:mod:`relay.domain.receipt_groups`): a morning's overdue notices cost a confirm per
    agency, not per notice."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._conn: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None

    def __call__(self, outs: Sequence[Outgoing]) -> None:
        if not outs:
            return
        found = (
            receipt_groups.messages(outs)
            if self.settings.group_receipts
            else [receipt_groups.Message(out, [out]) for out in outs]
        )
        try:
            if self._channel is None or not self._channel.is_open:
                self.close()
                self._conn = amqp.connect(self.settings.amqp_url, name="lienthong-relay-jobs")
                self._channel = amqp.open_confirm_channel(self._conn)
            for message in found:
                try:
                    amqp.publish(self._channel, message.outgoing)
                except amqp.Unroutable as e:
                    # The sender's inbox is gone (agency removed): nobody to tell; say so.
                    for out in message.receipts:
                        log.error("receipt.unroutable", message_id=out.message_id, reason=str(e))
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None
        self._channel = None


class PeriodicJobs:
    def __init__(self, settings: Settings, engine: Engine, publisher: ReceiptPublisher) -> None:
        self.settings = settings
        self.deadlines = DeadlineJob(settings, engine, publisher)
        self.engine = engine

    def run(self, stop: threading.Event) -> None:
        next_deadlines = 0.0
        next_retention = time.monotonic() + min(60.0, self.settings.retention_interval_seconds)
        while not stop.is_set():
            now = time.monotonic()
            if now >= next_deadlines:
                self._guarded("deadlines", self.deadlines.run_once)
                next_deadlines = time.monotonic() + self.settings.deadline_tick_seconds
            if now >= next_retention:  # LIENTHONG_RETENTION_DAYS=0: only taken-back copies
                self._guarded("retention", self._retention)
                next_retention = time.monotonic() + self.settings.retention_interval_seconds
            stop.wait(max(0.0, min(next_deadlines, next_retention) - time.monotonic()))

    def _retention(self) -> None:
        from relay.retention.job import run_retention

        days = self.settings.retention_days or None  # 0: only the copies taken back
        run_retention(self.engine, self.settings, days=days, stop_after_seconds=None)

    @staticmethod
    def _guarded(name: str, fn: Callable[[], object]) -> None:
        try:
            fn()
        except Exception as e:  # loop boundary: log, try again at the next tick
            log.warning("jobs.pass_failed", job=name, reason=f"{type(e).__name__}: {e}")


def start_periodic_jobs(
    settings: Settings, stop: threading.Event, engine: Engine
) -> threading.Thread:
    """The jobs in a daemon thread of their own until ``stop`` is set. ``engine``: their own,
    built by the composition root; disposed of when the jobs end."""

    def run() -> None:
        publisher = ReceiptPublisher(settings)
        try:
            PeriodicJobs(settings, engine, publisher).run(stop)
        except Exception:
            log.exception("relay.jobs_crashed")
        finally:
            publisher.close()
            engine.dispose()

    thread = threading.Thread(target=run, name="lienthong-jobs", daemon=True)
    thread.start()
    return thread
