"""The adapter daemon: the outbox scanner (main thread), the broker loop (its own thread) and
the folder connector's hand-over of received items (its own thread).

The broker loop records every inbox message in the received-item store
(:mod:`adapters.received`) and acks it; the hand-over thread, woken by :attr:`Adapter.received`,
writes the pending items into ``inbox/`` (:mod:`adapters.handover`). Each thread opens its own
spool connection. With ``[vxp]`` configured, the SDK connector's HTTP server (its own thread,
:mod:`adapters.vxp`) hands received items to the DMS instead, and the hand-over thread does not
run; ``outbox/`` is scanned either way.

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
from adapters.formats.registry import get_format
from adapters.handover import FolderHandOver
from adapters.inbox import InboxRecorder, RenderCheck
from adapters.metrics import serve_metrics
from adapters.outbox import OutboxScanner
from adapters.received import ReceivedStore
from adapters.spool import Spool, SpoolError
from adapters.vxp.inbox import DirectoryAwareRecorder, edxml_check
from adapters.vxp.server import SdkServer, SdkServerFailed
from schemas.errors import LienthongError, PermanentError

log = structlog.get_logger()


class AlreadyRunning(PermanentError, RuntimeError):
    """Another adapter daemon holds this root."""


class AdapterFailed(LienthongError, RuntimeError):
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
        #: Whether the folder connector hands received items over; with [vxp] configured the
        #: SDK connector does (the items wait in the store until the DMS acks them).
        self.folder_inbox = config.vxp is None
        self.stop = threading.Event()
        #: Set when the broker side recorded new items; wakes the folder hand-over at once.
        self.received = threading.Event()
        self.broker = BrokerLoop(config, self._recorder, self.stop)

    def _recorder(self, spool: Spool) -> InboxRecorder:
        # The connector that hands received items over must be able to write what is acked:
        # check it before the ack, so that a document it cannot express goes back to the relay
        # (and its sender): the folder connector in its format, the SDK connector as edXML.
        # Directory snapshots from the relay are kept either way.
        check: RenderCheck | None = None
        if self.folder_inbox:
            check = FolderHandOver(self.config, ReceivedStore(spool), self.format).check
        elif self.config.vxp is not None:
            edxml = get_format("edxml")
            check = edxml_check(edxml.write_delivered_document, edxml.write_status)
        return DirectoryAwareRecorder(
            self.config, spool, check=check, on_recorded=self.received.set
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
            log.info(
                "adapter.started",
                agency=config.agency,
                root=str(config.root),
                url=config.safe_url(),
                format=config.format,
            )
            spool = Spool(config.spool_path)  # created (tables, WAL) before the threads open it
            monitoring = serve_metrics(config, self.broker.connected)  # metrics_addr, if set
            threads = [threading.Thread(target=self.broker.run, name="broker", daemon=True)]
            if self.folder_inbox:
                threads.append(
                    threading.Thread(target=self._hand_over, name="hand-over", daemon=True)
                )
            # With [vxp], the SDK connector (adapters/vxp/) hands received items to the DMS.
            sdk = SdkServer(config, get_format("edxml")) if config.vxp is not None else None
            for thread in threads:
                thread.start()
            try:
                if sdk is not None:
                    try:
                        sdk.start()
                    except SdkServerFailed as e:
                        raise AdapterFailed(str(e)) from e
                    threads.append(sdk.thread)
                with spool:
                    scanner = OutboxScanner(config, spool)
                    while not self.stop.is_set():
                        self._scan(scanner)
                        for thread in threads:
                            if not thread.is_alive():
                                log.error(
                                    "adapter.thread_died", agency=config.agency, thread=thread.name
                                )
                                raise AdapterFailed(
                                    f"the {thread.name} side of the adapter stopped unexpectedly; "
                                    "see the log"
                                )
                        self.stop.wait(config.poll_seconds)
            finally:
                self.stop.set()
                self.received.set()
                if sdk is not None:
                    sdk.stop()
                for thread in threads:
                    thread.join(timeout=30)
                if monitoring is not None:
                    monitoring.stop()
            log.info("adapter.stopped", agency=config.agency)

    def _hand_over(self) -> None:
        """The folder connector's inbox side: finish what a crash interrupted, then hand each
        recorded item over as soon as the broker side records it (or every ``poll_seconds``)."""
        agency = self.config.agency
        try:
            with Spool(self.config.spool_path) as spool:
                folder = FolderHandOver(self.config, ReceivedStore(spool), self.format)
                recovered = False
                while not self.stop.is_set():
                    self.received.clear()
                    try:
                        if not recovered:
                            folder.recover()
                            recovered = True
                        folder.hand_over_pending()
                    except SpoolError as e:
                        log.error("inbox.spool_failed", agency=agency, reason=str(e))
                    except OSError as e:
                        log.error("inbox.hand_over_failed", agency=agency, reason=str(e))
                    except Exception:  # loop boundary: log and try again
                        log.exception("inbox.hand_over_failed", agency=agency)
                    self.received.wait(self.config.poll_seconds)
        except Exception:
            log.exception("inbox.hand_over_crashed", agency=agency)
            raise

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
