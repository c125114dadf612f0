"""The retry policy: pure rules, no broker and no database (DESIGN §2 step 6).

A delivery that comes back from a recipient's inbox is tried again after a delay drawn with
*full jitter* (AWS Architecture Blog, "Exponential Backoff And Jitter"): the ceiling doubles
with each failed attempt and is capped, and the actual delay is uniform between 0 and that
ceiling, so that many deliveries returned at the same moment (a recipient that rejected a burst)
do not come back at the same moment either.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from relay.domain import states

#: Delivery states from which a returned copy is a failed attempt to count, and states in
#: which the recipient has the document: both defined with the state rules.
RETURNABLE_STATES = states.RETURNABLE_STATES
REACHED_STATES = states.REACHED_STATES

#: Dead-letter reasons RabbitMQ writes in ``x-first-death-reason`` / ``x-death[].reason``,
#: told in words an operator can act on.
_REASONS = {
    "rejected": "rejected by the recipient's adapter (it could not store the delivery)",
    "expired": "not taken from the inbox before the inbox TTL expired (is the adapter running?)",
    "delivery_limit": "redelivered too many times without being acknowledged (adapter crashing?)",
    "maxlen": "dropped because the inbox was over its length limit",
}


def backoff_ceiling(attempt: int, *, base: float, cap: float) -> float:
    """The largest delay after failed attempt ``attempt`` (1-based): ``base·2^(n-1)``, capped."""
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, got {attempt}")
    # 2**attempt overflows a float only for absurd attempt counts; the cap wins long before.
    exponent = min(attempt - 1, 62)
    return float(min(cap, base * (2**exponent)))


def compute_backoff(
    attempt: int, *, base: float, cap: float, rng: random.Random | None = None
) -> float:
    """Seconds to wait before retrying after the ``attempt``-th failed attempt (full jitter)."""
    ceiling = backoff_ceiling(attempt, base=base, cap=cap)
    return (rng or random).uniform(0.0, ceiling)


class Decision(StrEnum):
    RETRY = "retry"  # schedule another attempt after a backoff
    FAIL = "fail"  # the last attempt came back: the delivery is failed, tell the sender
    HOLD = "hold"  # the destination is down: keep it, without spending an attempt
    IGNORE = "ignore"  # a stray copy (already delivered, failed or scheduled): record only


@dataclass(frozen=True)
class Outcome:
    decision: Decision
    attempts: int  # the delivery's attempt count after this return
    delay: float | None = None  # for RETRY


def on_return(
    *,
    state: str,
    attempts: int,
    max_attempts: int,
    destination_down: bool,
    base: float,
    cap: float,
    rng: random.Random | None = None,
) -> Outcome:
    """What to do with a delivery in ``state`` that has just come back from its inbox."""
    if state not in RETURNABLE_STATES:
        return Outcome(Decision.IGNORE, attempts)
    if destination_down:
        return Outcome(Decision.HOLD, attempts)
    attempts += 1
    if attempts >= max_attempts:
        return Outcome(Decision.FAIL, attempts)
    return Outcome(Decision.RETRY, attempts, compute_backoff(attempts, base=base, cap=cap, rng=rng))


def should_mark_down(*, failing_deliveries: int, down_after: int) -> bool:
    """A destination is down when this many *different* deliveries to it keep coming back.

    Counting distinct deliveries, not returns, keeps one document that a recipient cannot take
    (too big, say) from marking the whole recipient down: that one fails on its own.
    """
    return failing_deliveries >= down_after


def return_reason(headers: Mapping[str, Any] | None) -> str:
    """Why RabbitMQ dead-lettered a message, from its ``x-first-death-*`` / ``x-death`` headers."""
    headers = headers or {}
    reason = _text(headers.get("x-first-death-reason"))
    queue = _text(headers.get("x-first-death-queue"))
    deaths = headers.get("x-death")
    if isinstance(deaths, Sequence) and deaths and isinstance(deaths[0], Mapping):
        # x-death is newest first; the newest death is the one that brought it back now.
        reason = _text(deaths[0].get("reason")) or reason
        queue = _text(deaths[0].get("queue")) or queue
    if not reason:
        return "returned from the inbox (no dead-letter reason given)"
    text = _REASONS.get(reason, f"dead-lettered ({reason})")
    return f"{text} [{reason} in {queue}]" if queue else f"{text} [{reason}]"


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value) if value is not None else ""
