"""``lienthong relay run`` with ``LIENTHONG_WORKERS`` > 1: several relay processes, one parent.

Each worker process runs :func:`relay.worker.main.run_relay` on its own share of the outboxes
(:class:`relay.worker.partition.Partition`), with its own AMQP connection and database
connections, so the work of different agencies proceeds in parallel on several cores while each
agency's submissions stay in order. The first worker also runs the retry worker and the sweep.

The workers are forked from the parent, which loaded the relay first (:mod:`relay.worker.preload`)
and had started no thread yet (the metrics endpoint is served once they are forked): the pages
holding the relay's modules are shared by all of them (PSS counts them once), where spawned
workers each loaded their own copy (about 67 MB each).

The parent only supervises: SIGTERM/SIGINT is passed on to every worker (each stops cleanly, as
a single relay does), and if one worker dies the others are stopped too and the parent exits
non-zero, so that systemd (or whoever started it) restarts the whole relay.
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import signal
from collections.abc import Callable, Mapping
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType

import structlog

from relay.config import Settings
from relay.worker.large import LargeTurn
from relay.worker.partition import Partition

log = structlog.get_logger()

#: How long stopping workers get before they are killed (each waits out its confirms first).
STOP_TIMEOUT_SECONDS = 60.0
#: Loaded by the parent before it forks the workers (:mod:`relay.worker.preload`).
PRELOAD = "relay.worker.preload"


#: Sets up a process's logs with extra fields in every line, e.g. a ``functools.partial`` of
#: the console script's logging set-up.
LogSetup = Callable[[Mapping[str, str]], None]
#: What the parent serves once its workers are forked (the metrics endpoint): a context
#: manager, entered after the fork so that no thread of it exists when a worker is forked.
Serve = Callable[[], contextlib.AbstractContextManager[object]]


def _worker(
    settings: Settings, partition: Partition, log_setup: LogSetup | None, large_turn: LargeTurn
) -> None:
    """A worker process's entry point: forked from the parent, with the relay's modules
    already loaded (:mod:`relay.worker.preload`)."""
    from relay.worker.main import run_relay

    if log_setup is not None:
        log_setup({"worker": str(partition)})
    run_relay(settings, partition, large_turn)


def run_workers(
    settings: Settings, log_setup: LogSetup | None = None, serve: Serve | None = None
) -> int:
    """Run ``settings.workers`` relay processes until a signal; returns the exit status.

    ``log_setup`` is called first thing in each worker process (the composition root, the
    console script, passes its own; the relay does not import it). ``serve`` is entered once
    the workers are forked and left when they have stopped.

    Call it before starting any thread: the workers are forked from this process."""
    importlib.import_module(PRELOAD)
    ctx = multiprocessing.get_context("fork")
    count = settings.workers
    large_turn = LargeTurn.for_workers()  # one large document stored at a time (.large)
    procs: list[BaseProcess] = [
        ctx.Process(
            target=_worker,
            args=(settings, Partition(i, count), log_setup, large_turn),
            name=f"lienthong-relay-{i + 1}",
        )
        for i in range(count)
    ]
    stopping = False

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        if not stopping:
            log.info("relay.signal", signal=signal.Signals(signum).name, workers=count)
        stopping = True
        for p in procs:
            if p.pid is not None and p.exitcode is None:
                p.terminate()  # SIGTERM: the worker stops cleanly

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    status = 0
    try:
        for p in procs:
            p.start()
        log.info("relay.workers_started", workers=count, pids=[p.pid for p in procs])
        with serve() if serve is not None else contextlib.nullcontext():
            running = list(procs)
            while running:
                ended = wait([p.sentinel for p in running])
                for p in [p for p in running if p.sentinel in ended]:
                    p.join()
                    running.remove(p)
                    if not stopping:
                        log.error("relay.worker_exited", worker=p.name, exitcode=p.exitcode)
                        status = 1
                        on_signal(signal.SIGTERM, None)
                    elif p.exitcode not in (0, None):
                        status = status or 1
    except BaseException:
        on_signal(signal.SIGTERM, None)  # e.g. the metrics port is taken: stop the workers
        raise
    finally:
        for p in procs:
            if p.pid is not None:
                p.join(STOP_TIMEOUT_SECONDS if stopping else 0)
                if p.exitcode is None:
                    log.error("relay.worker_killed", worker=p.name)
                    p.kill()
                    p.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("relay.workers_stopped", workers=count)
    return status
