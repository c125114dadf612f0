"""The relay's broker side: one pika ``SelectConnection`` and everything done on its ioloop.

Outbox messages are consumed (:mod:`.outboxes`), gathered into batches (:mod:`.batching`, by the
rules of :mod:`.intake`), each batch is stored in ONE database transaction on a database thread
(:mod:`.transaction`), then everything it produced is published at once and confirmed; only
when a batch's deliveries are recorded ``queued`` are its outbox messages acked
(:mod:`.publishing`). The leader republishes pending deliveries nobody is publishing
(:mod:`.sweep`). The connection, its channels and stopping: :mod:`.lifecycle`.

PostgreSQL being unreachable does not close anything: the database threads wait for it with
backoff and the same work runs again (:mod:`relay.worker.dbthread`), so the broker connection
and the unacked outbox messages are kept; the directory poll and the sweep run on a database
thread too, never on the ioloop. A channel failure or a bug closes the connection; the broker
then hands every unacked outbox message back, and :func:`relay.worker.main.run_relay`
reconnects.

:class:`RelayLoop` is one connection's lifetime: the state every concept shares
(:class:`relay.worker.loopstate.LoopState`) with each concept's methods mixed in.
"""

from __future__ import annotations

from relay.worker.batching import Batching
from relay.worker.lifecycle import Lifecycle
from relay.worker.outboxes import Outboxes
from relay.worker.publishing import Publishing
from relay.worker.sweep import Sweep


class RelayLoop(Lifecycle, Outboxes, Batching, Publishing, Sweep):
    """One connection's lifetime. ``run()`` returns when the connection is closed."""
