"""The demo's own failures: each message says what went wrong and where to look."""

from __future__ import annotations

from relay.errors import LienthongError


class DemoFailed(LienthongError):
    """The scenario could not run or did not end as expected."""


class ServicesUnreachable(DemoFailed):
    """RabbitMQ, its management API or PostgreSQL does not answer (checked before anything)."""
