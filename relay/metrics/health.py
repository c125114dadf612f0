"""Health and readiness checks: does RabbitMQ answer, does PostgreSQL, is the schema current."""

from __future__ import annotations

import contextlib
import threading

import pika
import pika.exceptions
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from pika.adapters.utils.connection_workflow import AMQPConnectorException
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from relay.broker.errors import unreachable, without_password
from relay.db.migrate import alembic_config

#: Seconds a check waits for an answer: a probe must answer before its caller gives up.
CHECK_TIMEOUT_SECONDS = 2.0
#: The name RabbitMQ shows for the broker check's connection (``connection_name``).
CONNECTION_NAME = "lienthong-healthz"
#: TCP keepalive on the kept connection: a broker that vanished without closing it (a network
#: partition, a host powered off) is found out by the kernel after about 2 + 2 x 1 s of silence
#: (and unacknowledged data after 4 s), not only by the AMQP heartbeat a minute later.
KEEPALIVE_OPTIONS = {
    "TCP_KEEPIDLE": 2,
    "TCP_KEEPINTVL": 1,
    "TCP_KEEPCNT": 2,
    "TCP_USER_TIMEOUT": int(CHECK_TIMEOUT_SECONDS * 2 * 1000),
}


class BrokerCheck:
    """``/healthz``'s RabbitMQ check (None: fine, else what is wrong) over ONE kept connection.

    A probe every few seconds that opened and closed a connection each time cost a full AMQP
    handshake per probe and two log lines in RabbitMQ. This check opens its connection at the
    first call and keeps it: each call processes what the broker sent (``Connection.Close``,
    heartbeats, a lost socket: pika raises) and asks whether it is still open; a connection
    that was lost is replaced once, with the same short timeouts, and if that fails the answer
    names the URL (without its password). The endpoint answers each request on a thread of its
    own and pika connections are not thread-safe, so one lock guards the connection; a call
    that cannot take it within :data:`CHECK_TIMEOUT_SECONDS` (an earlier one is stuck on a
    stalled broker) answers with that problem instead of waiting. :meth:`close` closes the
    connection when the endpoint stops.
    """

    def __init__(self, amqp_url: str) -> None:
        self.amqp_url = amqp_url
        self._lock = threading.Lock()
        self._conn: pika.BlockingConnection | None = None
        self._closed = False

    def __call__(self) -> str | None:
        timeout = CHECK_TIMEOUT_SECONDS
        if not self._lock.acquire(timeout=timeout):
            return (
                f"RabbitMQ at {without_password(self.amqp_url)} was not checked: the check "
                f"before this one was still running after {timeout:g} s (a stalled broker?)"
            )
        try:
            if self._closed:
                return "the RabbitMQ check has stopped (the monitoring endpoint is stopping)"
            if self._alive():
                return None
            return self._connect()
        finally:
            if self._closed:  # close() could not wait for this call: the call closes
                self._drop()
            self._lock.release()

    def close(self) -> None:
        """Close the kept connection; a call still running closes it when it ends."""
        self._closed = True
        if not self._lock.acquire(timeout=CHECK_TIMEOUT_SECONDS * 3):
            return  # the call still running sees _closed and closes the connection
        try:
            self._drop()
        finally:
            self._lock.release()

    def _alive(self) -> bool:
        """The kept connection still works (and its heartbeats are answered)."""
        conn = self._conn
        if conn is None:
            return False
        # Whatever the kept connection raises (closed by the broker, socket lost, a state pika
        # did not expect), it is replaced rather than kept broken.
        with contextlib.suppress(Exception):
            conn.process_data_events(time_limit=0)
            if conn.is_open:
                return True
        self._drop()
        return False

    def _connect(self) -> str | None:
        params = pika.URLParameters(self.amqp_url)
        params.connection_attempts = 1
        params.socket_timeout = CHECK_TIMEOUT_SECONDS
        params.stack_timeout = CHECK_TIMEOUT_SECONDS * 2
        params.blocked_connection_timeout = CHECK_TIMEOUT_SECONDS
        params.client_properties = {"connection_name": CONNECTION_NAME}
        params.tcp_options = dict(KEEPALIVE_OPTIONS)
        try:
            self._conn = pika.BlockingConnection(params)
        # A stalled handshake raises AMQPConnectorException, which is no AMQPError and lives in
        # pika's connection workflow module, not in pika.exceptions (naming it there raised
        # AttributeError the moment the broker did not answer).
        except (pika.exceptions.AMQPError, AMQPConnectorException, OSError) as e:
            return unreachable(self.amqp_url, e)
        return None

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and conn.is_open:
            with contextlib.suppress(pika.exceptions.AMQPError, OSError):
                conn.close()


def database_problem(engine: Engine) -> str | None:
    """None when PostgreSQL answers ``SELECT 1``."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as e:
        why = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
        url = engine.url.render_as_string(hide_password=True)
        return f"PostgreSQL is unreachable at {url}: {why}"
    return None


def schema_problem(engine: Engine) -> str | None:
    """None when the database schema is at the relay's latest migration."""
    heads = set(ScriptDirectory.from_config(alembic_config(engine)).get_heads())
    try:
        with engine.connect() as conn:
            current = set(MigrationContext.configure(conn).get_current_heads())
    except SQLAlchemyError as e:
        return f"the database schema cannot be read: {getattr(e, 'orig', None) or e}"
    if current != heads:
        have = ", ".join(sorted(current)) or "none"
        return (
            f"the database schema is at revision {have}, not {', '.join(sorted(heads))}: "
            "run `lienthong relay setup`"
        )
    return None
