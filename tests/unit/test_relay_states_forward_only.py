"""Issue 12 item 3: a take-back (13) answered with 16 never moves a delivery backwards."""

from __future__ import annotations

import pytest

from relay.domain import states as s
from relay.domain.states import after_status


def _walk(start: str, codes: list[str]) -> str:
    """Apply ``codes`` in order, remembering what each transition asks to remember."""
    state = start
    remembered: str | None = None
    for code in codes:
        move = after_status(state, code, before_recall=remembered)
        if move.before_recall is not None:
            remembered = move.before_recall
        state = move.state
    return state


def test_a_second_13_does_not_forget_the_state_before_the_first() -> None:
    assert _walk(s.QUEUED, ["01", "05", "13", "13", "16"]) == s.PROCESSING


@pytest.mark.parametrize(
    ("codes", "expected"),
    [
        (["01", "03", "13", "05", "16"], s.PROCESSING),
        (["01", "05", "13", "06", "16"], s.COMPLETED),
        (["01", "04", "13", "13", "05", "13", "16"], s.PROCESSING),
        (["01", "05", "13", "03", "16"], s.PROCESSING),
    ],
)
def test_progress_reported_during_a_take_back_counts_when_it_is_refused(
    codes: list[str], expected: str
) -> None:
    assert _walk(s.QUEUED, codes) == expected


def test_a_13_while_a_take_back_is_pending_keeps_what_was_remembered() -> None:
    move = after_status(s.RECALL_REQUESTED, "13", before_recall=s.PROCESSING)
    assert move.state == s.RECALL_REQUESTED and not move.moved
    assert move.before_recall == s.PROCESSING


def test_the_sql_state_lists_come_from_the_state_rules() -> None:
    from relay.retry import policy

    assert policy.REACHED_STATES == s.REACHED_STATES
    assert s.DELIVERED in s.REACHED_STATES and s.QUEUED not in s.REACHED_STATES
    assert policy.RETURNABLE_STATES == s.RETURNABLE_STATES
