"""The inbox collector: a process that consumes the recipients' inboxes and times each document.

A document is complete when all its copies arrived; its latency is the arrival of the last copy
minus the send time carried in its message id (:mod:`tests.bench.msgid`). Receipts to the
senders are consumed and counted, so the senders' inboxes do not fill up.
"""

from __future__ import annotations

import time
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import Synchronized
from typing import Any

from pika.adapters.select_connection import SelectConnection

from schemas import topology as t
from tests.bench.env import connection_parameters
from tests.bench.msgid import sent_at

#: One completed document: (submission message id, sent at, completed at), unix seconds.
Completion = tuple[str, float, float]


class Collector:
    def __init__(
        self,
        amqp_url: str,
        queues: list[str],
        copies: int,
        ctrl: Connection,
        completed: Synchronized[int],
    ) -> None:
        self.amqp_url = amqp_url
        self.queues = queues
        self.copies = copies
        self.ctrl = ctrl
        self.completed = completed
        self.partial: dict[str, int] = {}
        self.done: list[Completion] = []
        self.other = 0
        self.conn: SelectConnection | None = None
        self.stopping = False

    def run(self) -> None:
        self.conn = SelectConnection(
            connection_parameters(self.amqp_url),
            on_open_callback=self._on_open,
            on_open_error_callback=self._on_open_error,
            on_close_callback=self._on_closed,
        )
        self.conn.ioloop.start()

    def _on_open_error(self, conn: Any, err: Any) -> None:
        self.ctrl.send(("error", f"collector cannot connect: {err}"))
        conn.ioloop.stop()

    def _on_closed(self, conn: Any, reason: Any) -> None:
        if not self.stopping:
            self.ctrl.send(("error", f"collector connection closed: {reason}"))
        conn.ioloop.stop()

    def _on_open(self, conn: Any) -> None:
        conn.channel(on_open_callback=self._on_channel)

    def _on_channel(self, ch: Any) -> None:
        for q in self.queues:
            ch.basic_consume(q, self._on_message, auto_ack=True)
        self.ctrl.send(("ready",))
        assert self.conn is not None
        self.conn.ioloop.call_later(0.02, self._poll)

    def _on_message(self, ch: Any, method: Any, props: Any, body: bytes) -> None:
        now = time.time()
        if props.type != t.TYPE_DOCUMENT:
            self.other += 1
            return
        sid = props.correlation_id or (props.headers or {}).get(t.HEADER_SUBMISSION_ID)
        if not sid:
            self.other += 1
            return
        n = self.partial.get(sid, 0) + 1
        if n >= self.copies:
            self.partial.pop(sid, None)
            self.done.append((sid, sent_at(sid), now))
            self.completed.value += 1
        else:
            self.partial[sid] = n

    def _poll(self) -> None:
        assert self.conn is not None
        while self.ctrl.poll():
            cmd = self.ctrl.recv()
            if cmd[0] == "report":
                self.ctrl.send(("report", self.done, self.other, len(self.partial)))
                self.done = []
            elif cmd[0] == "stop":
                self.stopping = True
                self.conn.close()
                return
        self.conn.ioloop.call_later(0.02, self._poll)


def run_collector(
    amqp_url: str,
    queues: list[str],
    copies: int,
    completed: Synchronized[int],
    ctrl: Connection,
) -> None:
    """Process entry point."""
    Collector(amqp_url, queues, copies, ctrl, completed).run()
