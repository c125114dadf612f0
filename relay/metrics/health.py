"""Health and readiness checks: does RabbitMQ answer, does PostgreSQL, is the schema current."""

from __future__ import annotations

import contextlib
from urllib.parse import urlsplit, urlunsplit

import pika
import pika.exceptions
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from pika.adapters.utils.connection_workflow import AMQPConnectorException
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from relay.db.migrate import alembic_config

#: Seconds a check waits for an answer: a probe must answer before its caller gives up.
CHECK_TIMEOUT_SECONDS = 2.0


def without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def broker_problem(amqp_url: str) -> str | None:
    """None when an AMQP connection to ``amqp_url`` opens (and is closed again)."""
    params = pika.URLParameters(amqp_url)
    params.connection_attempts = 1
    params.socket_timeout = CHECK_TIMEOUT_SECONDS
    params.stack_timeout = CHECK_TIMEOUT_SECONDS * 2
    params.blocked_connection_timeout = CHECK_TIMEOUT_SECONDS
    params.client_properties = {"connection_name": "lienthong-healthz"}
    try:
        conn = pika.BlockingConnection(params)
    # A stalled handshake raises AMQPConnectorException, which is no AMQPError and lives in
    # pika's connection workflow module, not in pika.exceptions (naming it there raised
    # AttributeError the moment the broker did not answer).
    except (pika.exceptions.AMQPError, AMQPConnectorException, OSError) as e:
        why = str(e) or type(e).__name__
        return f"RabbitMQ is unreachable at {without_password(amqp_url)}: {why}"
    with contextlib.suppress(pika.exceptions.AMQPError):
        conn.close()
    return None


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
