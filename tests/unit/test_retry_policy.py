"""The retry policy is pure: backoff with full jitter, decisions on a return, reasons."""

from __future__ import annotations

import random

import pytest

from relay.retry.policy import (
    Decision,
    backoff_ceiling,
    compute_backoff,
    on_return,
    return_reason,
    should_mark_down,
)


def test_the_backoff_ceiling_doubles_with_each_attempt_up_to_the_cap() -> None:
    ceilings = [backoff_ceiling(n, base=30, cap=3600) for n in range(1, 10)]
    assert ceilings == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]


def test_the_backoff_ceiling_survives_absurd_attempt_counts() -> None:
    assert backoff_ceiling(10_000, base=1, cap=60) == 60


def test_attempt_numbers_start_at_one() -> None:
    with pytest.raises(ValueError, match="attempt must be >= 1, got 0"):
        backoff_ceiling(0, base=1, cap=2)


def test_a_delay_is_drawn_between_zero_and_the_ceiling() -> None:
    rng = random.Random(7)
    for attempt in range(1, 12):
        for _ in range(200):
            delay = compute_backoff(attempt, base=0.5, cap=20, rng=rng)
            assert 0 <= delay <= backoff_ceiling(attempt, base=0.5, cap=20)


def test_the_same_seed_gives_the_same_delays() -> None:
    a = [compute_backoff(n, base=1, cap=100, rng=random.Random(42)) for n in range(1, 8)]
    b = [compute_backoff(n, base=1, cap=100, rng=random.Random(42)) for n in range(1, 8)]
    assert a == b


def test_full_jitter_spreads_deliveries_returned_together() -> None:
    rng = random.Random(1)
    delays = [compute_backoff(3, base=10, cap=3600, rng=rng) for _ in range(1000)]
    # uniform on [0, 40]: the mean is near 20 and the delays cover the whole range
    assert 17 < sum(delays) / len(delays) < 23
    assert min(delays) < 2 and max(delays) > 38


def test_a_first_return_schedules_a_retry_within_the_first_ceiling() -> None:
    outcome = on_return(
        state="queued",
        attempts=0,
        max_attempts=3,
        destination_down=False,
        base=1.0,
        cap=10.0,
        rng=random.Random(3),
    )
    assert outcome.decision is Decision.RETRY
    assert outcome.attempts == 1
    assert outcome.delay is not None and 0 <= outcome.delay <= 1.0


def test_the_last_attempt_coming_back_fails_the_delivery() -> None:
    outcome = on_return(
        state="queued", attempts=2, max_attempts=3, destination_down=False, base=1.0, cap=10.0
    )
    assert outcome.decision is Decision.FAIL
    assert outcome.attempts == 3


def test_a_return_to_a_destination_that_is_down_is_held_without_spending_an_attempt() -> None:
    outcome = on_return(
        state="queued", attempts=2, max_attempts=3, destination_down=True, base=1.0, cap=10.0
    )
    assert outcome.decision is Decision.HOLD
    assert outcome.attempts == 2


def test_a_copy_returned_after_pending_counts_as_an_attempt() -> None:
    outcome = on_return(
        state="pending", attempts=0, max_attempts=3, destination_down=False, base=1.0, cap=10.0
    )
    assert outcome.decision is Decision.RETRY


@pytest.mark.parametrize("state", ["delivered", "completed", "retrying", "failed", "refused"])
def test_a_stray_copy_never_moves_a_delivery(state: str) -> None:
    outcome = on_return(
        state=state, attempts=1, max_attempts=3, destination_down=False, base=1.0, cap=10.0
    )
    assert outcome.decision is Decision.IGNORE
    assert outcome.attempts == 1


def test_a_destination_is_down_when_enough_different_deliveries_fail() -> None:
    assert not should_mark_down(failing_deliveries=4, down_after=5)
    assert should_mark_down(failing_deliveries=5, down_after=5)


def test_a_rejected_delivery_is_explained_with_its_queue() -> None:
    headers = {
        "x-first-death-reason": "rejected",
        "x-first-death-queue": "agency.000.00.00.H41.inbox",
        "x-death": [{"reason": "rejected", "queue": "agency.000.00.00.H41.inbox", "count": 1}],
    }
    reason = return_reason(headers)
    assert reason.startswith("rejected by the recipient's adapter")
    assert "[rejected in agency.000.00.00.H41.inbox]" in reason


def test_an_expired_delivery_says_the_adapter_may_not_be_running() -> None:
    assert "is the adapter running?" in return_reason({"x-first-death-reason": b"expired"})


def test_the_newest_death_explains_a_message_that_died_several_times() -> None:
    headers = {
        "x-first-death-reason": "expired",
        "x-death": [{"reason": b"delivery_limit", "queue": b"agency.X.inbox"}],
    }
    assert "[delivery_limit in agency.X.inbox]" in return_reason(headers)


def test_a_message_without_death_headers_still_gets_a_reason() -> None:
    assert return_reason(None) == "returned from the inbox (no dead-letter reason given)"
    assert "dead-lettered (weird)" in return_reason({"x-first-death-reason": "weird"})


def test_the_retry_policy_imports_no_broker_or_database_library() -> None:
    import ast
    from pathlib import Path

    import relay.retry.policy as policy

    tree = ast.parse(Path(policy.__file__).read_text(encoding="utf-8"))
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    }
    assert imported.isdisjoint({"pika", "sqlalchemy", "psycopg", "httpx"}), imported
    # Of the relay itself, only the pure domain rules (the delivery states live there).
    relay_modules = {
        node.module or ""
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("relay")
    }
    assert all(m.startswith("relay.domain") for m in relay_modules), relay_modules
