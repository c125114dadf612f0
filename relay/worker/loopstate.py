"""What one broker connection of the relay holds, shared by the concepts of :mod:`.loop`.

:class:`LoopState` is the state of one connection's lifetime (channels, consumers, gathered
messages, publishes awaiting confirms, the bytes held) and the seams by which each concept
calls the others. Each concept is a module of its own, mixed into
:class:`relay.worker.loop.RelayLoop`:

- :mod:`.lifecycle` — the connection, its channels, and stopping;
- :mod:`.outboxes` — which outboxes to consume: the directory poll, declaring, cancelling,
  pausing and resuming intake;
- :mod:`.batching` — gathering outbox messages into batches and handing them to the database;
- :mod:`.transaction` — one batch on the database thread (savepoint, one-by-one fallback,
  rejections);
- :mod:`.publishing` — publishing, confirms, recording ``queued``, acking the outbox messages;
- :mod:`.sweep` — republishing pending deliveries nobody is publishing.

Everything here runs on the ioloop's thread, except what a concept says runs on a database
thread (:mod:`.transaction`, the closures handed to :class:`~relay.worker.dbthread.DbThread`).
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

import pika.channel
from sqlalchemy import Engine

from relay.config import Settings
from relay.deadlines.calendar import Dating
from relay.deadlines.job import calendar_from
from relay.worker.acks import OutboxAcks
from relay.worker.amqp import RelayConnection
from relay.worker.confirms import Confirms, InFlight
from relay.worker.dbthread import DbThread
from relay.worker.intake import FlushRules, start_prefetch
from relay.worker.large import LargeTurn
from relay.worker.partition import Partition
from relay.worker.process import Inbound, Publish
from relay.worker.transaction import BatchTransaction


class LoopState:
    """One connection's state, and the methods each concept offers the others."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        stop: threading.Event | None = None,
        partition: Partition | None = None,
        large_turn: LargeTurn | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        #: the outboxes this worker consumes; the leader also sweeps stale pending deliveries
        self.partition = partition or Partition()
        self._stop_event = stop or threading.Event()
        self.connected = False  # became true once both channels were ready
        self._conn: RelayConnection | None = None
        self._consume: pika.channel.Channel | None = None
        self._publish: pika.channel.Channel | None = None
        self._consumers: dict[str, str] = {}  # agency code -> consumer tag
        #: the channel outboxes are declared on, and the declarations waiting for it
        self._declare: pika.channel.Channel | None = None
        self._to_declare: deque[tuple[str, str, Callable[[Any], None]]] = deque()
        self._declaring: tuple[str, str] | None = None
        self._skipped: set[str] = set()  # outboxes the broker refused to declare
        #: consumer tag -> (queue, agency), until the broker confirms its cancel
        self._handlers: dict[str, tuple[str, str]] = {}
        self._owned: set[str] = set()  # active agencies whose outbox this worker consumes
        #: outboxes whose consumption was logged at info, until cancelled or released
        self._announced: set[str] = set()
        #: bytes of outbox messages received and not yet acked; above ``intake_max_bytes`` the
        #: consumers are cancelled (``_paused``) until half of it is left
        self._held_bytes = 0
        self._held_count = 0
        #: messages held per outbox queue (a consumer at its prefetch is what regrows it)
        self._held_by_queue: Counter[str] = Counter()
        #: the most bytes held since intake last paused or resumed, logged then: what the
        #: broker had already pushed when the consumers were cancelled shows here
        self._held_peak = 0
        #: the prefetch (messages) given to the consumers started now: one at first, then
        #: what the sizes held allow (see ``_pause_intake`` and .intake.START_PREFETCH)
        self._prefetch = start_prefetch(settings.prefetch)
        self._paused = False
        self._consumer_serial = 0
        self._pending: list[Inbound] = []
        self._pending_bytes = 0
        #: bytes the published, unconfirmed copies hold (frames; a large body is not copied)
        self._copy_bytes = 0
        #: publishes waiting for the bound on copies in flight, in order, each with the bytes
        #: it counts (see .publishing)
        self._unsent: deque[tuple[InFlight, Publish, int]] = deque()
        self._unsent_bytes = 0
        #: when gathered messages go as a batch (see .batching)
        self._flush_rules = FlushRules.of(settings)
        self._flush_timer: object | None = None
        self._timers: dict[str, object] = {}
        #: publishes awaiting their confirm, with the batch each belongs to (see .confirms)
        self._confirms: Confirms[tuple[InFlight, Publish, int]] = Confirms()
        self._returned: dict[str, str] = {}
        self._inflight: set[int] = set()  # ids of InFlight objects not yet completed
        self._publishing: dict[int, int] = {}  # delivery id -> publishes awaiting confirm
        self._publishing_lock = threading.Lock()
        #: stores a batch on the database thread (see .transaction)
        self._transaction = BatchTransaction(
            settings.max_message_bytes,
            self._publishing,
            self._publishing_lock,
            Dating(calendar_from(settings), settings.urgent_deadline_seconds),
            large_turn,
        )
        self._db: DbThread | None = None
        #: confirmed publishes are recorded (``queued``) on a connection of their own, so that
        #: PostgreSQL works on them while the next batch is being stored
        self._db_queued: DbThread | None = None
        self._jobs = 0  # work handed to the database thread and not yet answered
        self._batches = 0  # batches handed to the database thread and not yet answered
        self._stopping = False
        self._closing = False
        #: outbox acks: one ``multiple`` ack per run of settled delivery tags (see .acks)
        self._acks = OutboxAcks()

    def _later(self, name: str, seconds: float, fn: Callable[[], None]) -> None:
        assert self._conn is not None
        self._timers[name] = self._conn.ioloop.call_later(seconds, fn)

    # -- the seams: each is defined by the concept named, mixed into RelayLoop ---------------

    def _fail(self, why: str) -> None:  # .lifecycle
        raise NotImplementedError

    def _close(self) -> None:  # .lifecycle
        raise NotImplementedError

    def _on_declare_channel(self, ch: pika.channel.Channel) -> None:  # .lifecycle
        raise NotImplementedError

    def _poll_directory(self) -> None:  # .outboxes
        raise NotImplementedError

    def _declare_next(self) -> None:  # .outboxes
        raise NotImplementedError

    def _on_declare_closed(self, ch: pika.channel.Channel, reason: BaseException) -> None:
        raise NotImplementedError  # .outboxes

    def _on_broker_cancel(self, frame: Any) -> None:  # .outboxes
        raise NotImplementedError

    def _cancel_consumer(self, ch: pika.channel.Channel, tag: str) -> None:  # .outboxes
        raise NotImplementedError

    def _dispatch_delivery(
        self, method: pika.spec.Basic.Deliver, props: pika.spec.BasicProperties, body: bytes
    ) -> None:  # .outboxes
        raise NotImplementedError

    def _pause_intake(self) -> None:  # .outboxes
        raise NotImplementedError

    def _resume_intake(self) -> None:  # .outboxes
        raise NotImplementedError

    def _on_message(
        self,
        queue: str,
        owner: str,
        method: pika.spec.Basic.Deliver,
        props: pika.spec.BasicProperties,
        body: bytes,
    ) -> None:  # .batching
        raise NotImplementedError

    def _flush(self, *, wait_for_db: bool = False) -> None:  # .batching
        raise NotImplementedError

    def _send(self, flight: InFlight, *, at_once: bool = False) -> None:  # .publishing
        raise NotImplementedError

    def _on_return(
        self,
        _ch: pika.channel.Channel,
        method: pika.spec.Basic.Return,
        props: pika.spec.BasicProperties,
        _body: bytes,
    ) -> None:  # .publishing
        raise NotImplementedError

    def _on_confirm(self, frame: Any) -> None:  # .publishing
        raise NotImplementedError

    def _ack_settled(self, ch: pika.channel.Channel) -> None:  # .publishing
        raise NotImplementedError

    def _sweep(self) -> None:  # .sweep
        raise NotImplementedError
