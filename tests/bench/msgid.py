"""Submission message ids that carry their send time and benchmark phase (RFC 9562 UUIDv8).

The collector reads the send time back from the id, so latency needs no shared state between
the publishing and the collecting processes (both on this machine, one wall clock).

Layout: 48 bits unix milliseconds | version 8 | 12 bits microseconds within the millisecond |
variant | 14 zero bits | 8 bits phase | 40 bits sequence. The phase is the first two hex digits of
the last group, so SQL can pick a phase's rows with ``LIKE`` (:func:`phase_like_pattern`).
"""

from __future__ import annotations

import time
import uuid

_SEQ_BITS = 40
_SEQ_MASK = (1 << _SEQ_BITS) - 1


def make_id(phase: int, seq: int, at: float | None = None) -> str:
    """A message id for item ``seq`` of ``phase`` (0-255) sent at ``at`` (default: now)."""
    if not 0 <= phase <= 0xFF:
        raise ValueError(f"phase must be within 0-255, got {phase!r}")
    t_us = int((time.time() if at is None else at) * 1_000_000)
    ms, us = divmod(t_us, 1000)
    n = (ms & ((1 << 48) - 1)) << 80
    n |= 0x8 << 76
    n |= us << 64
    n |= 0b10 << 62
    n |= phase << _SEQ_BITS
    n |= seq & _SEQ_MASK
    return str(uuid.UUID(int=n))


def sent_at(message_id: str) -> float:
    """The send time (unix seconds) encoded in a :func:`make_id` id."""
    n = int(message_id.replace("-", ""), 16)
    return (n >> 80) / 1000.0 + ((n >> 64) & 0xFFF) / 1_000_000.0


def phase_of(message_id: str) -> int:
    """The phase encoded in a :func:`make_id` id."""
    return (int(message_id.replace("-", ""), 16) >> _SEQ_BITS) & 0xFF


def phase_like_pattern(phase: int) -> str:
    """A SQL ``LIKE`` pattern matching exactly the ids of ``phase``."""
    return f"________-____-____-____-{phase:02x}__________"
