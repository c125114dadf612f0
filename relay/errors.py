"""The project's error hierarchy, as the relay imports it: defined in :mod:`schemas.errors`,
the bottom layer the relay, the adapters and the console script may all import."""

from __future__ import annotations

from schemas.errors import (
    InvalidInput,
    LienthongError,
    NotFound,
    PermanentError,
    ServiceUnavailable,
    TransientError,
)

__all__ = [
    "InvalidInput",
    "LienthongError",
    "NotFound",
    "PermanentError",
    "ServiceUnavailable",
    "TransientError",
]
