"""The adapter daemon: one folder scanner (main thread) and one broker loop (its own thread).

Only one daemon may serve a root at a time (an exclusive ``flock`` on ``root/.adapter.lock``);
``lienthong adapter send`` uses the same lock to know whether a daemon will send what it spools.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import structlog

from adapters.broker import BrokerLoop
from adapters.config import AdapterConfig
from adapters.files import remove_stale_temp_files
from adapters.formats.registry import get_format
from adapters.inbox import InboxWriter
from adapters.metrics import serve_metrics
from adapters.outbox import OutboxScanner
from adapters.spool import Spool, SpoolError

log = structlog.get_logger()


class AlreadyRunning(RuntimeError):
    """Another adapter daemon holds this root."""


class AdapterFailed(RuntimeError):
    """The daemon cannot go on (its broker thread died); the service manager restarts it."""


@contextmanager
def root_lock(config: AdapterConfig, *, wait: bool = False) -> Iterator[bool]:
    """Hold the root's exclusive lock; yields False (without blocking) when someone has it."""
    config.root.mkdir(parents=True, exist_ok=True)
    fd = os.open(config.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


class Adapter:
    """Wires the connector, the spool and the broker loop for one agency."""

    def __init__(self, config: AdapterConfig) -> None:
        self.config = config
        self.format = get_format(config.format)  # fail at start if the format is unavailable
        self.stop = threading.Event()
        self.broker = BrokerLoop(
            config, lambda spool: InboxWriter(config, spool, self.format), self.stop
        )

    def run(self) -> None:
        """Serve until :attr:`stop` is set (SIGTERM/SIGINT in the CLI)."""
        config = self.config
        with root_lock(config) as locked:
            if not locked:
                raise AlreadyRunning(
                    f"another adapter is already running on {str(config.root)!r} "
                    f"(lock {str(config.lock_path)!r})"
                )
            config.ensure_folders()
            for d in (config.inbox_documents, config.inbox_statuses, config.inbox_receipts):
                remove_stale_temp_files(d)
            log.info(
                "adapter.started",
                agency=config.agency,
                root=str(config.root),
                url=config.safe_url(),
                format=config.format,
            )
            spool = Spool(config.spool_path)  # created (tables, WAL) before the thread opens it
            monitoring = serve_metrics(config, self.broker.connected)  # metrics_addr, if set
            thread = threading.Thread(target=self.broker.run, name="broker", daemon=True)
            thread.start()
            try:
                with spool:
                    scanner = OutboxScanner(config, spool)
                    while not self.stop.is_set():
                        self._scan(scanner)
                        if not thread.is_alive():
                            log.error("adapter.broker_thread_died", agency=config.agency)
                            raise AdapterFailed(
                                "the broker side of the adapter stopped unexpectedly; see the log"
                            )
                        self.stop.wait(config.poll_seconds)
            finally:
                self.stop.set()
                thread.join(timeout=30)
                if monitoring is not None:
                    monitoring.stop()
            log.info("adapter.stopped", agency=config.agency)

    def _scan(self, scanner: OutboxScanner) -> None:
        try:
            scanner.scan_once()
        except SpoolError as e:
            log.error("outbox.spool_failed", agency=self.config.agency, reason=str(e))
        except OSError as e:
            log.error(
                "outbox.scan_failed",
                agency=self.config.agency,
                reason=f"{e.strerror} ({e.filename})",
            )
        except Exception:  # loop boundary: log and keep scanning
            log.exception("outbox.scan_failed", agency=self.config.agency)
