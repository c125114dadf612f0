"""``lienthong relay run``: the composition root of the relay daemon.

Builds the engine, runs :class:`relay.worker.loop.RelayLoop` (reconnecting with backoff when the
broker or the database goes away), runs the retry worker beside it, and stops cleanly on
SIGTERM/SIGINT: consumers are cancelled, gathered messages are finished, outstanding confirms
are awaited, and anything left unacked is handed back to RabbitMQ.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

import structlog

from relay.blobs.malloc import fix_mmap_threshold
from relay.config import Settings
from relay.db.engine import make_engine
from relay.directory.publish import start_directory_publisher
from relay.federation.link import start_federation_links
from relay.periodic import start_periodic_jobs
from relay.retry.deadletters import FailedSubmissionsWorker
from relay.retry.worker import RetryWorker
from relay.worker.loop import RelayLoop
from relay.worker.partition import Partition

log = structlog.get_logger()

#: Reconnect backoff: doubles from the first delay up to the cap, reset after a good session.
RECONNECT_FIRST_SECONDS = 0.5
RECONNECT_MAX_SECONDS = 15.0
#: The relay's statements end in an error after this long (a batch of big documents is well
#: under it); the database thread then treats it like any other database error.
STATEMENT_TIMEOUT_MS = 120_000


def _start_in_thread(
    name: str, worker: RetryWorker | FailedSubmissionsWorker, stop: threading.Event
) -> threading.Thread:
    """A leader's side worker in a thread of its own, with its own connection and engine."""

    def run() -> None:
        try:
            worker.run(stop)
        except Exception:
            log.exception("relay.side_worker_crashed", worker=name)

    thread = threading.Thread(target=run, name=f"lienthong-{name}", daemon=True)
    thread.start()
    return thread


def run_relay(settings: Settings, partition: Partition | None = None) -> None:
    """Run the relay until SIGTERM/SIGINT (must be called from the main thread).

    ``partition``: the share of the outboxes this process consumes when several worker
    processes run (:mod:`relay.worker.supervisor`); only the first one runs the retry worker.
    """
    partition = partition or Partition()
    fix_mmap_threshold()  # issue 17: 1 MiB chunks must not fragment the heap (relay/blobs)
    stop = threading.Event()
    current: list[RelayLoop] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        # Once only: a second signal arriving inside the first handler must not take pika's
        # waker lock again.
        if stop.is_set():
            return
        stop.set()
        log.info("relay.signal", signal=signal.Signals(signum).name)
        for loop in current:
            loop.request_stop()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    engine = make_engine(settings.database_url, statement_timeout_ms=STATEMENT_TIMEOUT_MS)
    side_threads = (
        [
            _start_in_thread("retry", RetryWorker(settings), stop),
            _start_in_thread("failed-submissions", FailedSubmissionsWorker(settings), stop),
            start_periodic_jobs(settings, stop),
        ]
        if partition.leader
        else []
    )
    start_directory_publisher(settings, stop, leader=partition.leader)
    if partition.leader:
        start_federation_links(settings, stop)  # relay/federation: links to other hubs
    delay = RECONNECT_FIRST_SECONDS
    try:
        while not stop.is_set():
            loop = RelayLoop(settings, engine, stop, partition)
            current[:] = [loop]
            try:
                loop.run()
            except Exception:
                # A bug escaping the ioloop: the broker takes back every unacked message when
                # the connection drops; log it and start a fresh connection.
                log.exception("relay.loop_crashed")
            current.clear()
            if stop.is_set():
                break
            if loop.connected:
                delay = RECONNECT_FIRST_SECONDS
            log.info("relay.reconnecting", in_seconds=delay)
            stop.wait(delay)
            delay = min(delay * 2, RECONNECT_MAX_SECONDS)
    finally:
        stop.set()
        for thread in side_threads:
            thread.join(timeout=30)
        engine.dispose()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.info("relay.stopped")
