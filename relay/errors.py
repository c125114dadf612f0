"""The project's error hierarchy. Library errors are translated at the edge (``raise … from e``)."""

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
