"""pika's errors in one line for a person: where the relay tried and why it failed.

pika nests the cause of a failed connection in the exception's ``args`` and its ``str()`` is
often empty (``AMQPConnectionError()`` for a refused port), so ``str(e)`` alone logged
``"error": ""``.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def without_password(url: str) -> str:
    """``url`` with its password, if any, replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def describe(e: BaseException) -> str:
    """``Type: detail`` for a pika (or socket) error, the nested causes included."""
    detail = "; ".join(str(a) or repr(a) for a in e.args) or str(e)
    return f"{type(e).__name__}: {detail}" if detail else type(e).__name__


def unreachable(amqp_url: str, e: BaseException) -> str:
    """``RabbitMQ is unreachable at <url without password>: <why>``."""
    return f"RabbitMQ is unreachable at {without_password(amqp_url)}: {describe(e)}"
