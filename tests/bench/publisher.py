"""The simulated agency adapters: one process, one connection per agency, streamed confirms.

Each agency publishes as its own RabbitMQ user (``user_id`` = its code, as DESIGN §2 step 1
requires) to its own ``lienthong.submit.<code>`` with its code as routing key, persistent and
mandatory. All connections share one pika IOLoop; confirms stream (a bounded window of
unconfirmed publishes per agency), so the publisher is not what limits the systems measured.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import Synchronized
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import pika
from pika.adapters.select_connection import IOLoop, SelectConnection

from schemas import topology as t
from tests.bench.confirms import ConfirmTracker
from tests.bench.env import connection_parameters
from tests.bench.msgid import make_id
from tests.bench.payloads import Template, document_id_for

TICK_SECONDS = 0.002
MAX_PER_TICK = 400  # publishes per tick, so confirms and socket writes get their turn


def agency_url(amqp_url: str, code: str, password: str) -> str:
    """``amqp_url`` with the agency's own credentials."""
    parts = urlsplit(amqp_url)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{quote(code, safe='')}:{quote(password, safe='')}@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


@dataclass
class Agency:
    code: str
    password: str
    template: Template
    channel: Any = None
    confirms: ConfirmTracker = field(default_factory=ConfirmTracker)


@dataclass
class Job:
    phase: int
    count: int
    rate: float | None  # documents per second overall; None: as fast as the window allows
    window: int  # unconfirmed publishes per agency
    max_backlog: int | None  # published but not yet completed at the collector
    started: float = field(default_factory=time.monotonic)
    sent: int = 0
    confirmed: int = 0
    nacked: int = 0


class Publisher:
    def __init__(
        self,
        amqp_url: str,
        agencies: list[tuple[str, str]],
        templates: dict[str, Template],
        ctrl: Connection,
        completed: Synchronized[int],
    ) -> None:
        self.amqp_url = amqp_url
        self.agencies = [Agency(c, p, templates[c]) for c, p in agencies]
        self.ctrl = ctrl
        self.completed = completed
        self.ioloop = IOLoop()
        self.connections: list[SelectConnection] = []
        self.open_channels = 0
        self.returned = 0
        self.job: Job | None = None
        self.rr = 0
        self.seq = 0  # unique over the publisher's life: ids and document ids never repeat
        self.stopping = False

    def run(self) -> None:
        for a in self.agencies:
            params = connection_parameters(agency_url(self.amqp_url, a.code, a.password))
            self.connections.append(
                SelectConnection(
                    params,
                    on_open_callback=partial(self._on_open, a),
                    on_open_error_callback=self._on_open_error,
                    on_close_callback=self._on_closed,
                    custom_ioloop=self.ioloop,
                )
            )
        self.ioloop.start()

    def _on_open_error(self, conn: Any, err: Any) -> None:
        self.ctrl.send(("error", f"publisher cannot connect: {err}"))
        self.ioloop.stop()

    def _on_closed(self, conn: Any, reason: Any) -> None:
        if not self.stopping:
            self.ctrl.send(("error", f"publisher connection closed: {reason}"))
            self.ioloop.stop()
            return
        if all(c.is_closed for c in self.connections):
            self.ioloop.stop()

    def _on_open(self, a: Agency, conn: Any) -> None:
        conn.channel(on_open_callback=partial(self._on_channel, a))

    def _on_channel(self, a: Agency, ch: Any) -> None:
        a.channel = ch
        ch.add_on_return_callback(self._on_return)
        ch.confirm_delivery(partial(self._on_confirm, a))
        self.open_channels += 1
        if self.open_channels == len(self.agencies):
            self.ctrl.send(("ready",))
            self.ioloop.call_later(0.02, self._poll)

    def _on_return(self, ch: Any, method: Any, props: Any, body: bytes) -> None:
        self.returned += 1

    def _on_confirm(self, a: Agency, frame: Any) -> None:
        m = frame.method
        settled = len(a.confirms.settle(m.delivery_tag, m.multiple))
        if self.job is None:
            return
        if m.NAME == "Basic.Nack":
            self.job.nacked += settled
        else:
            self.job.confirmed += settled
        self._maybe_finish()

    def _poll(self) -> None:
        while self.ctrl.poll():
            cmd = self.ctrl.recv()
            if cmd[0] == "publish":
                _, phase, count, rate, window, max_backlog = cmd
                self.job = Job(phase, count, rate, window, max_backlog)
                self.ioloop.add_callback_threadsafe(self._tick)
            elif cmd[0] == "stop":
                self.stopping = True
                for c in self.connections:
                    if c.is_open:
                        c.close()
                return
        self.ioloop.call_later(0.02, self._poll)

    def _tick(self) -> None:
        job = self.job
        if job is None or job.sent >= job.count:
            return
        target = job.count
        if job.rate is not None:
            elapsed = time.monotonic() - job.started
            target = min(job.count, int(job.rate * elapsed) + 1)
        if job.max_backlog is not None:
            target = min(target, self.completed.value + job.max_backlog)
        budget = MAX_PER_TICK
        n = len(self.agencies)
        blocked = 0
        while job.sent < target and budget > 0 and blocked < n:
            a = self.agencies[self.rr % n]
            self.rr += 1
            if a.confirms.outstanding >= job.window:
                blocked += 1
                continue
            blocked = 0
            self._publish(a, job)
            budget -= 1
        if job.sent < job.count:
            self.ioloop.call_later(TICK_SECONDS, self._tick)

    def _publish(self, a: Agency, job: Job) -> None:
        self.seq += 1
        message_id = make_id(job.phase, self.seq)
        props = pika.BasicProperties(
            message_id=message_id,
            type=t.TYPE_DOCUMENT,
            user_id=a.code,
            delivery_mode=2,
            content_type=t.CONTENT_TYPE,
        )
        body = a.template.body(document_id_for(a.code, self.seq))
        a.channel.basic_publish(
            t.submit_exchange(a.code), t.submit_routing_key(a.code), body, props, mandatory=True
        )
        a.confirms.published()
        job.sent += 1

    def _maybe_finish(self) -> None:
        job = self.job
        if job is None or job.confirmed + job.nacked < job.count:
            return
        elapsed = time.monotonic() - job.started
        self.ctrl.send(("published", job.sent, job.nacked, self.returned, elapsed))
        self.job = None
        self.returned = 0


def run_publisher(
    amqp_url: str,
    agencies: list[tuple[str, str]],
    templates: dict[str, Template],
    completed: Synchronized[int],
    ctrl: Connection,
) -> None:
    """Process entry point."""
    Publisher(amqp_url, agencies, templates, ctrl, completed).run()
