"""Running a federation link inside ``lienthong relay run`` (no extra daemon to operate).

Each link is two pumps, each a thread with two AMQP connections: *up* takes what this hub's
relay routed to the link (the inbox of the link's agency here) and submits it to the other hub
as that agency; *down* takes what the other hub delivers to that agency and submits it here.
A message is acked at its source only after the other hub's broker confirmed the copy
(publisher confirms, ``mandatory``), and copies carry derived ids that each hub deduplicates
on, so a cut link, a restarted hub or a crashed pump delivers everything once. While the link
is cut the backlog waits, durable, in the source inbox (visible in the management UI and in
``lienthong federation show``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import pika
import pika.exceptions
import structlog
from pika.adapters.blocking_connection import BlockingChannel
from pika.adapters.utils.connection_workflow import AMQPConnectorException
from sqlalchemy import Engine

from relay.config import Settings
from relay.federation import bridge, store
from relay.secretkey import SecretKeyError
from schemas import Receipt
from schemas import topology as t

log = structlog.get_logger()

#: Messages a pump holds unacked from its source; each is confirmed on the other side first.
PREFETCH = 200
#: Reconnect backoff (seconds): doubles up to the cap while the other hub is unreachable.
RECONNECT_FIRST_SECONDS = 0.5
RECONNECT_MAX_SECONDS = 15.0
#: How often the relay looks for links added or removed with ``lienthong federation``.
POLL_SECONDS = 5.0
#: How long an idle pump waits for a message before it services the other connection.
IDLE_SECONDS = 0.5


def with_credentials(url: str, user: str, password: str) -> pika.URLParameters:
    """``url`` (credentials in it ignored) logging in as ``user``."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    params = pika.URLParameters(urlunsplit(parts._replace(netloc=netloc)))
    params.connection_attempts = 1
    params.socket_timeout = 10
    params.stack_timeout = 30
    params.heartbeat = 30
    params.blocked_connection_timeout = 60
    return params


def submit_target(agency: str) -> tuple[str, str]:
    """(exchange, routing key) an agency submits to: where its adapter would publish."""
    return t.submit_exchange(agency), t.submit_routing_key(agency)


@dataclass(frozen=True)
class Side:
    """One hub as the link sees it."""

    params: pika.URLParameters
    label: str  # for logs: "here" or the link's remote URL without password


class Pump:
    """Moves the link agency's inbox on ``source`` into its submissions on ``target``."""

    def __init__(
        self,
        link: store.Link,
        direction: str,
        source: Side,
        target: Side,
        recipients_of: bridge.RecipientsOf,
        stop: threading.Event,
    ) -> None:
        self.link = link
        self.direction = direction
        self.source = source
        self.target = target
        self.recipients_of = recipients_of
        self.stop = stop
        self.log = log.bind(link=link.name, direction=direction, agency=link.agency)

    def run(self) -> None:
        delay = RECONNECT_FIRST_SECONDS
        down = False
        while not self.stop.is_set():
            try:
                self._session(on_connected=lambda: self.log.info("federation.link_up"))
                delay = RECONNECT_FIRST_SECONDS
                down = False
            except (pika.exceptions.AMQPError, AMQPConnectorException, OSError) as e:
                # A stalled handshake is an AMQPConnectorException, not an AMQPError.
                if not down:
                    self.log.warning("federation.link_down", error=f"{type(e).__name__}: {e}")
                down = True
            except Exception:
                self.log.exception("federation.pump_crashed")
            if self.stop.wait(delay):
                break
            delay = min(delay * 2, RECONNECT_MAX_SECONDS)

    def _session(self, on_connected: Callable[[], None]) -> None:
        src = pika.BlockingConnection(self.source.params)
        try:
            dst = pika.BlockingConnection(self.target.params)
            try:
                out = dst.channel()
                out.confirm_delivery()
                inp = src.channel()
                inp.basic_qos(prefetch_count=PREFETCH)
                on_connected()
                self._pump(inp, out, dst)
            finally:
                _close(dst)
        finally:
            _close(src)

    def _pump(self, inp: BlockingChannel, out: BlockingChannel, dst: Any) -> None:
        exchange, routing_key = submit_target(self.link.agency)

        def forward(
            ch: BlockingChannel, method: Any, props: pika.BasicProperties, body: bytes
        ) -> None:
            self._forward(out, exchange, routing_key, props, body)
            ch.basic_ack(method.delivery_tag)

        # Both lanes of the link agency's inbox (DESIGN §3): the relay puts an urgent document's
        # copy for the other hub in the urgent one, which is consumed first.
        tags = [inp.basic_consume(queue, forward) for queue in self._lanes(inp)]
        while not self.stop.is_set():
            # a failed forward raises out of here: the message is not acked and comes back on
            # the next session
            inp.connection.process_data_events(time_limit=IDLE_SECONDS)
            dst.process_data_events(0)  # heartbeats of the other side
        for tag in tags:
            inp.basic_cancel(tag)

    def _lanes(self, inp: BlockingChannel) -> list[str]:
        """The link agency's inbox queues on the source, urgent first; a hub of a version
        without urgent lanes has only the ordinary one."""
        urgent = t.inbox_queue(self.link.agency, urgent=True)
        probe = inp.connection.channel()
        try:
            probe.queue_declare(urgent, passive=True)
        except pika.exceptions.ChannelClosedByBroker:
            self.log.info("federation.no_urgent_lane", queue=urgent)
            return [t.inbox_queue(self.link.agency)]
        if probe.is_open:
            probe.close()
        return [urgent, t.inbox_queue(self.link.agency)]

    def _forward(
        self,
        out: BlockingChannel,
        exchange: str,
        routing_key: str,
        props: pika.BasicProperties,
        body: bytes,
    ) -> None:
        message = bridge.Incoming(
            message_id=props.message_id,
            message_type=props.type,
            headers=dict(props.headers or {}),
            body=body,
        )
        result = bridge.handle(self.direction, message, self.recipients_of)
        if isinstance(result, bridge.Dropped):
            self.log.info(result.event, detail=result.detail, message_id=props.message_id)
            return
        for f in result:
            # Raises (UnroutableError, NackError) unless the broker confirmed it.
            out.basic_publish(
                exchange=exchange,
                routing_key=routing_key,
                body=f.body,
                properties=pika.BasicProperties(
                    message_id=f.message_id,
                    type=f.message_type,
                    user_id=self.link.agency,
                    delivery_mode=2,
                    content_type=t.CONTENT_TYPE,
                    app_id=f"lienthong-federation {self.link.name}",
                ),
                mandatory=True,
            )
            self.log.debug("federation.forwarded", message_id=f.message_id, type=f.message_type)


def _close(connection: pika.BlockingConnection) -> None:
    try:
        if connection.is_open:
            connection.close()
    except Exception:  # the connection is being dropped anyway
        pass


def pumps(
    settings: Settings, engine: Engine, link: store.Link, password: str, stop: threading.Event
) -> list[Pump]:
    """The two pumps of ``link``, logging in on both hubs with ``password`` (decrypted)."""
    remote = urlsplit(link.amqp_url)
    here = Side(with_credentials(settings.amqp_url, link.agency, password), "here")
    there = Side(
        with_credentials(link.amqp_url, remote.username or link.agency, password),
        link.amqp_url,
    )

    def upstream_recipients(receipt: Receipt) -> bridge.Forwarded | None:
        with engine.connect() as conn:
            found = store.forwarded_submission(
                conn, link.agency, receipt.document_id, receipt.in_reply_to
            )
        return None if found is None else bridge.Forwarded(sender=found[0], recipients=found[1])

    def nothing_forwarded(_receipt: Receipt) -> bridge.Forwarded | None:
        # Receipts of this hub about what came down: no recipient routed here is answered for
        # upstream (the other hub's directory says it is hosted here; a sync fixes a drift).
        return None

    return [
        Pump(link, bridge.UP, here, there, nothing_forwarded, stop),
        Pump(link, bridge.DOWN, there, here, upstream_recipients, stop),
    ]


class LinkRunner:
    """Runs every link in the table, starting and stopping them as the table changes."""

    def __init__(self, settings: Settings, stop: threading.Event, engine: Engine) -> None:
        self.settings = settings
        self.stop = stop
        self.engine = engine
        self.running: dict[str, tuple[store.Link, threading.Event, list[threading.Thread]]] = {}
        #: Links not started because their password cannot be read, and why (logged once each).
        self.unreadable: dict[str, tuple[store.Link, str]] = {}

    def run(self) -> None:
        """Run the links until ``stop``; the engine is disposed of at the end."""
        engine = self.engine
        try:
            while not self.stop.is_set():
                try:
                    with engine.connect() as conn:
                        wanted = {link.name: link for link in store.all_links(conn)}
                    self._reconcile(engine, wanted)
                except Exception as e:
                    log.warning("federation.poll_failed", error=f"{type(e).__name__}: {e}")
                self.stop.wait(POLL_SECONDS)
        finally:
            for _, link_stop, _threads in self.running.values():
                link_stop.set()
            for _, _, threads in self.running.values():
                for thread in threads:
                    thread.join(timeout=15)
            engine.dispose()

    def _reconcile(self, engine: Engine, wanted: dict[str, store.Link]) -> None:
        for name in list(self.running):
            link, link_stop, _ = self.running[name]
            if wanted.get(name) != link:
                link_stop.set()
                del self.running[name]
                log.info("federation.link_stopped", link=name)
        for name in set(self.unreadable) - set(wanted):
            del self.unreadable[name]
        for name, link in wanted.items():
            if name in self.running:
                continue
            password = self._password(link)
            if password is None:
                continue
            link_stop = threading.Event()
            threads = []
            for pump in pumps(self.settings, engine, link, password, _either(self.stop, link_stop)):
                thread = threading.Thread(
                    target=pump.run, name=f"lienthong-federation-{name}-{pump.direction}"
                )
                thread.daemon = True
                thread.start()
                threads.append(thread)
            self.running[name] = (link, link_stop, threads)
            log.info("federation.link_started", link=name, agency=link.agency)

    def _password(self, link: store.Link) -> str | None:
        """The link's password; None (logged once per link and reason, without a traceback)
        when it cannot be read: that link is not started, the relay and the other links run.
        The key file is read again at each poll, so a fixed key starts the link."""
        try:
            password = link.password(self.settings)
        except SecretKeyError as e:
            if self.unreadable.get(link.name) != (link, str(e)):
                self.unreadable[link.name] = (link, str(e))
                log.error("federation.link_not_started", link=link.name, error=str(e))
            return None
        self.unreadable.pop(link.name, None)
        if not link.encrypted:
            log.warning(
                "federation.password_unencrypted",
                link=link.name,
                hint="set LIENTHONG_SECRET_KEY_FILE and run lienthong relay setup to encrypt it",
            )
        return password


def _either(a: threading.Event, b: threading.Event) -> threading.Event:
    """An event set when ``a`` or ``b`` is (the relay stops, or the link is removed)."""
    both = threading.Event()

    def watch() -> None:
        while not (a.wait(0.2) or b.is_set()):
            pass
        both.set()

    threading.Thread(target=watch, name="lienthong-federation-stop", daemon=True).start()
    return both


def start_federation_links(
    settings: Settings, stop: threading.Event, engine: Engine
) -> threading.Thread:
    """Run this hub's federation links beside the relay until ``stop`` is set, with ``engine``
    (their own, built by the composition root)."""
    runner = LinkRunner(settings, stop, engine)
    thread = threading.Thread(target=runner.run, name="lienthong-federation", daemon=True)
    thread.start()
    return thread
