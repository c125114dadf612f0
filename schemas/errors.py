"""The project's error hierarchy: every exception the project defines derives from
:class:`LienthongError` (``tests/unit/test_errors.py`` checks it). Library errors (pika,
SQLAlchemy, psycopg, httpx) are translated at the edge (``raise … from e``), so that permanent
vs transient is a type, not a string.

Here, in the bottom layer, so that the relay (:mod:`relay.errors` re-exports it), the adapters
and the console script derive from one root. A class that callers (or pydantic) catch as a
built-in keeps that built-in as a second base: ``class InvalidMessage(InvalidInput, ValueError)``.
"""

from __future__ import annotations


class LienthongError(Exception):
    """Base of every error the project raises on purpose."""


class PermanentError(LienthongError):
    """Retrying will not help: bad input, a refused permission, an unknown agency."""


class TransientError(LienthongError):
    """Retrying may help: a broker or database that is unreachable or restarting."""


class InvalidInput(PermanentError):
    """Input a person must fix; the message names the field and the value."""


class NotFound(PermanentError):
    """The thing asked for does not exist."""


class ServiceUnavailable(TransientError):
    """RabbitMQ, its management API or PostgreSQL cannot be reached."""
