"""The sweep: pending deliveries nobody is publishing, published again.

A copy the broker nacked (or one whose relay died before its confirm) stays ``pending``. The
partition's leader claims pending deliveries older than ``pending_sweep_seconds`` every as many
seconds (``FOR UPDATE SKIP LOCKED``, on the database thread), leaves out those this relay is
still awaiting a confirm for, and publishes the others again, bounded by count and bytes.
"""

from __future__ import annotations

import structlog

from relay.worker import store
from relay.worker.confirms import InFlight
from relay.worker.loopstate import LoopState
from relay.worker.process import Handled, republish_pending

log = structlog.get_logger()

#: How many stale pending deliveries one sweep republishes.
SWEEP_LIMIT = 1000
#: ... and how many bytes of documents one sweep holds (each document is read once, however
#: many of its deliveries are pending; the first document goes whatever its size).
SWEEP_MAX_BYTES = 32 * 1024 * 1024


class Sweep(LoopState):
    """Republishing stale pending deliveries (the leader only)."""

    def _sweep(self) -> None:
        if self._stopping or self._closing or not self.partition.leader:
            return
        assert self._db_queued is not None
        older_than = self.settings.pending_sweep_seconds
        self._db_queued.submit(
            lambda conn: store.claim_stale_pending(conn, older_than, SWEEP_LIMIT, SWEEP_MAX_BYTES),
            self._on_swept,
        )

    def _on_swept(self, stale: list[store.PendingDelivery]) -> None:
        if self._stopping or self._closing:
            return
        stale = [p for p in stale if p.delivery_id not in self._publishing]
        if stale:
            log.info("relay.sweep_republished", deliveries=len(stale))
            with self._publishing_lock:
                for p in stale:
                    self._publishing[p.delivery_id] = self._publishing.get(p.delivery_id, 0) + 1
            again = Handled(inbound=None, publishes=republish_pending(stale))
            self._send(InFlight(handled=[again]))
        self._later("sweep", self.settings.pending_sweep_seconds, self._sweep)
