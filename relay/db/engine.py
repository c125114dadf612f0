"""Engine construction. Nothing is created at import time."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url

#: How long opening a connection may take before it counts as PostgreSQL being unreachable
#: (libpq waits for the OS otherwise: minutes on a dropped network).
CONNECT_TIMEOUT_SECONDS = 10
#: An engine without ``pre_ping`` replaces a pooled connection this old at its next checkout.
RECYCLE_SECONDS = 300


def make_engine(
    url: str,
    *,
    pool_size: int = 5,
    statement_timeout_ms: int | None = None,
    pre_ping: bool = True,
) -> Engine:
    """An engine for ``url`` (``postgresql+psycopg://…``; a bare ``postgresql://`` is upgraded).

    ``statement_timeout_ms``: the daemons set one, so that a statement stuck behind a lock or
    on a failing disk ends in an error they handle instead of hanging a thread for ever.
    ``pre_ping``: each checkout first sends a ping and silently replaces a connection the server
    dropped. Off only for code that handles a lost connection itself (the relay loop's database
    threads, :mod:`relay.worker.dbthread`): there it is one round trip per transaction saved.
    Without it, a connection is replaced once it is :data:`RECYCLE_SECONDS` old (checked at
    checkout, no round trip), so that one a firewall dropped after a quiet night is not what the
    morning's first batch finds.
    """
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    connect_args: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
    if statement_timeout_ms is not None:
        connect_args["options"] = f"-c statement_timeout={int(statement_timeout_ms)}"
    return create_engine(
        url,
        pool_size=pool_size,
        pool_pre_ping=pre_ping,
        pool_recycle=-1 if pre_ping else RECYCLE_SECONDS,
        future=True,
        connect_args=connect_args,
    )


@contextlib.contextmanager
def disposing(engine: Engine) -> Iterator[Engine]:
    """``engine`` for the block; its connections are closed when the block ends."""
    try:
        yield engine
    finally:
        engine.dispose()


def monitoring_engine(url: str, connect_timeout_s: float) -> Engine:
    """The small engine of ``/metrics`` and ``/readyz``: a health check that finds PostgreSQL
    gone answers within ``connect_timeout_s`` rather than the usual connect timeout."""
    quick = make_url(url).update_query_dict({"connect_timeout": str(int(connect_timeout_s))})
    return make_engine(quick.render_as_string(hide_password=False), pool_size=2)
