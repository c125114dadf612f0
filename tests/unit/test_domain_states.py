"""The delivery state rules (DESIGN §2): forward only, recall answered by 15 or 16."""

from __future__ import annotations

import pytest

from relay.domain import states as s
from relay.domain.states import after_status


def _walk(start: str, codes: list[str]) -> str:
    state = start
    remembered: str | None = None
    for code in codes:
        move = after_status(state, code, before_recall=remembered)
        if move.before_recall is not None:
            remembered = move.before_recall
        state = move.state
    return state


def test_statuses_01_to_06_walk_the_delivery_to_completed() -> None:
    seen = []
    state = s.QUEUED
    for code in ["01", "03", "04", "05", "06"]:
        move = after_status(state, code)
        assert move.moved
        state = move.state
        seen.append(state)
    assert seen == [s.DELIVERED, s.ACCEPTED, s.ASSIGNED, s.PROCESSING, s.COMPLETED]


@pytest.mark.parametrize("late", ["01", "03", "04", "05"])
def test_a_late_status_after_completion_does_not_move_the_delivery_back(late: str) -> None:
    move = after_status(s.COMPLETED, late)
    assert move == s.Transition(state=s.COMPLETED, moved=False)


def test_an_out_of_order_status_is_recorded_without_moving_back() -> None:
    assert after_status(s.PROCESSING, "03").state == s.PROCESSING
    assert not after_status(s.PROCESSING, "03").moved


def test_a_status_may_skip_steps_forward() -> None:
    assert after_status(s.QUEUED, "06").state == s.COMPLETED
    assert after_status(s.PENDING, "03").state == s.ACCEPTED


@pytest.mark.parametrize("state", [s.RETRYING, s.FAILED, s.PENDING])
def test_status_01_for_a_retrying_or_failed_delivery_marks_it_delivered(state: str) -> None:
    assert after_status(state, "01") == s.Transition(state=s.DELIVERED, moved=True)


def test_a_refusal_ends_the_delivery_and_later_progress_does_not_revive_it() -> None:
    assert _walk(s.QUEUED, ["01", "02", "03", "06"]) == s.REFUSED


def test_a_refusal_after_completion_is_only_recorded() -> None:
    assert not after_status(s.COMPLETED, "02").moved


def test_a_recall_agreed_with_15_ends_in_recalled() -> None:
    assert _walk(s.QUEUED, ["01", "03", "13", "15"]) == s.RECALLED


def test_a_recall_refused_with_16_returns_to_the_state_before_the_request() -> None:
    move = after_status(s.ASSIGNED, "13")
    assert move == s.Transition(state=s.RECALL_REQUESTED, moved=True, before_recall=s.ASSIGNED)
    assert after_status(s.RECALL_REQUESTED, "16", before_recall=s.ASSIGNED).state == s.ASSIGNED


def test_a_16_without_a_remembered_state_returns_to_delivered() -> None:
    assert after_status(s.RECALL_REQUESTED, "16").state == s.DELIVERED


def test_15_or_16_without_a_pending_recall_moves_nothing() -> None:
    assert not after_status(s.DELIVERED, "15").moved
    assert not after_status(s.DELIVERED, "16").moved


def test_progress_during_a_pending_recall_is_only_recorded() -> None:
    move = after_status(s.RECALL_REQUESTED, "05")
    assert move.state == s.RECALL_REQUESTED and not move.moved
    # ... and remembered: a refused take-back (16) returns at least there (issue 12 item 3)
    assert move.before_recall == s.PROCESSING


def test_a_completed_or_recalled_delivery_cannot_be_recalled() -> None:
    assert not after_status(s.COMPLETED, "13").moved
    assert not after_status(s.RECALLED, "13").moved


def test_an_unknown_code_never_moves_a_delivery() -> None:
    assert not after_status(s.QUEUED, "99").moved


def test_every_state_a_status_can_produce_is_a_known_state() -> None:
    codes = ["01", "02", "03", "04", "05", "06", "13", "15", "16", "99"]
    for state in s.ALL_STATES:
        for code in codes:
            assert after_status(state, code, before_recall=s.ACCEPTED).state in s.ALL_STATES
