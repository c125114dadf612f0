"""``lienthong relay run``: the composition root of the relay daemon.

Builds the engine, runs :class:`relay.worker.loop.RelayLoop` (reconnecting with backoff when the
broker or the database goes away), runs the retry worker beside it, and stops cleanly on
SIGTERM/SIGINT: consumers are cancelled, gathered messages are finished, outstanding confirms
are awaited, and anything left unacked is handed back to RabbitMQ.
"""

from __future__ import annotations

import ctypes
import logging
import signal
import threading
from types import FrameType

import structlog
from sqlalchemy import Engine

from relay.config import Settings
from relay.db.engine import make_engine
from relay.directory.publish import start_directory_publisher
from relay.federation.link import start_federation_links
from relay.periodic import start_periodic_jobs
from relay.retry.deadletters import FailedSubmissionsWorker
from relay.retry.worker import STATEMENT_TIMEOUT_MS as RETRY_STATEMENT_TIMEOUT_MS
from relay.retry.worker import RetryWorker
from relay.worker.large import LargeTurn
from relay.worker.loop import RelayLoop
from relay.worker.partition import Partition

log = structlog.get_logger()

#: Reconnect backoff: doubles from the first delay up to the cap, reset after a good session.
RECONNECT_FIRST_SECONDS = 0.5
RECONNECT_MAX_SECONDS = 15.0
#: The relay's statements end in an error after this long (a batch of big documents is well
#: under it); the database thread then treats it like any other database error.
STATEMENT_TIMEOUT_MS = 120_000


def build_engine(settings: Settings) -> Engine:
    """The relay loop's engine (its two database threads share it). No ping before each
    transaction: a connection the server dropped fails the transaction's first statement, which
    :class:`relay.worker.dbthread.DbThread` takes for the database being unreachable (it waits
    until a new connection answers, then runs the same work again); the ping would be one more
    round trip in every batch."""
    return make_engine(
        settings.database_url, statement_timeout_ms=STATEMENT_TIMEOUT_MS, pre_ping=False
    )


def build_retry_engine(settings: Settings) -> Engine:
    """The retry worker's own engine: its work never waits for the relay loop's connections."""
    return make_engine(
        settings.database_url, pool_size=2, statement_timeout_ms=RETRY_STATEMENT_TIMEOUT_MS
    )


def build_side_engine(settings: Settings, pool_size: int = 1) -> Engine:
    """A small engine of its own for a side worker (failed submissions, periodic jobs, the
    directory publisher, federation links): none of them waits for another's connections."""
    return make_engine(settings.database_url, pool_size=pool_size)


def _start_in_thread(
    name: str,
    worker: RetryWorker | FailedSubmissionsWorker,
    stop: threading.Event,
    engine: Engine | None = None,
) -> threading.Thread:
    """A leader's side worker in a thread of its own, with its own connection and engine
    (``engine``, when the composition root built it, is disposed of when the worker ends)."""

    def run() -> None:
        try:
            worker.run(stop)
        except Exception:
            log.exception("relay.side_worker_crashed", worker=name)
        finally:
            if engine is not None:
                engine.dispose()

    thread = threading.Thread(target=run, name=f"lienthong-{name}", daemon=True)
    thread.start()
    return thread


#: glibc ``mallopt`` parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8
#: Buffers from this size on are mapped on their own and given back to the system when freed;
#: smaller ones come from the heap, which gives back what is free at its top beyond this size.
LARGE_BUFFER_BYTES = 4 * 1024 * 1024
#: malloc arenas per process. glibc gives each thread that allocates at the same time as
#: another an arena of its own (up to 8 per core); the relay's threads (ioloop, two database
#: threads, side workers) each kept the freed memory of their arena, several times what one
#: shared heap holds.
MALLOC_ARENAS = 2


def release_large_buffers() -> None:
    """Make every freed large document buffer go back to the system.

    glibc raises its mmap threshold each time a mapped buffer is freed (up to 32 MiB), after
    which buffers of many megabytes come from the heap and, freed, stay in the process: a relay
    that handled a burst of large documents kept hundreds of MB it no longer used. A fixed
    threshold keeps large buffers mapped. Measured with ``python -m tests.bench.bigdocs``: a
    relay moving 1 GB in 1 MiB chunks peaked at 426 MB (VmHWM) without it, 232 MB with a
    threshold of 256 KiB.

    A mapped buffer costs a page fault per page each time (the kernel maps and zeroes it): with
    256 KiB, the buffers of a 1.4 MB document (the body, its attachment's base64 text and bytes,
    psycopg's and pika's) took about 1,900 faults, and the relay spent 12.0-15.1 ms of CPU per
    1 MiB document at half load (``make bench``, 1MiB-attachment, seven runs). At 4 MiB a
    document's buffers up to that size are reused from the heap: 8.1-10.7 ms (five runs, a
    fifth of the faults), for 10-40 MB more at peak over the relay's processes; a 20 MB
    document's buffers are still mapped (bigdocs, 1 GB in 1 MiB chunks: 150 MB before, 176 MB
    after)."""
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc: nothing to tune
        return
    mallopt(_M_MMAP_THRESHOLD, LARGE_BUFFER_BYTES)
    mallopt(_M_TRIM_THRESHOLD, LARGE_BUFFER_BYTES)
    mallopt(_M_ARENA_MAX, MALLOC_ARENAS)  # before the relay starts its threads


def quiet_pika() -> None:
    """pika logs each failed connection attempt at ERROR, with a traceback, in plain text among
    the relay's JSON lines; the relay says it once per attempt itself, in JSON, with where it
    tried and why (``relay.broker_unreachable``, ``retry.worker_interrupted``), as the adapter
    does (``adapters.cli.quiet_pika``)."""
    logging.getLogger("pika").setLevel(logging.CRITICAL + 1)


def run_relay(
    settings: Settings, partition: Partition | None = None, large_turn: LargeTurn | None = None
) -> None:
    """Run the relay until SIGTERM/SIGINT (must be called from the main thread).

    ``partition``: the share of the outboxes this process consumes when several worker
    processes run (:mod:`relay.worker.supervisor`); only the first one runs the retry worker.
    ``large_turn``: shared by those processes, so that one stores a large document at a time
    (:mod:`relay.worker.large`).
    """
    release_large_buffers()
    quiet_pika()
    partition = partition or Partition()
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
    engine = build_engine(settings)
    side_threads: list[threading.Thread] = []
    if partition.leader:
        retry_engine = build_retry_engine(settings)
        dead_engine = build_side_engine(settings)
        dead_letters = FailedSubmissionsWorker(settings, dead_engine)
        side_threads = [
            _start_in_thread("retry", RetryWorker(settings, retry_engine), stop, retry_engine),
            _start_in_thread("failed-submissions", dead_letters, stop, dead_engine),
            start_periodic_jobs(settings, stop, build_side_engine(settings, pool_size=2)),
        ]
        if settings.directory_publish_seconds > 0:  # one publisher per relay
            start_directory_publisher(settings, stop, build_side_engine(settings))
        # relay/federation: links to other hubs
        start_federation_links(settings, stop, build_side_engine(settings, pool_size=2))
    delay = RECONNECT_FIRST_SECONDS
    try:
        while not stop.is_set():
            loop = RelayLoop(settings, engine, stop, partition, large_turn)
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
