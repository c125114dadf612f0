"""Engine construction. Nothing is created at import time."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine


def make_engine(url: str, *, pool_size: int = 5) -> Engine:
    """An engine for ``url`` (``postgresql+psycopg://…``; a bare ``postgresql://`` is upgraded)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return create_engine(url, pool_size=pool_size, pool_pre_ping=True, future=True)
