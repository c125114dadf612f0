"""The relay's intake and batching rules (:mod:`relay.worker.intake`): pure, no services."""

from __future__ import annotations

import pytest

from relay.worker.intake import (
    BATCH_BYTES_SHARE,
    Flush,
    FlushRules,
    IntakeStep,
    intake_step,
    may_resume,
    paused_prefetch,
    start_prefetch,
)

MiB = 1024 * 1024
RULES = FlushRules(batch_size=250, batch_wait_ms=20, intake_max_bytes=64 * MiB)


def decide(**kw: object) -> Flush:
    args: dict[str, object] = {
        "wait_for_db": False,
        "db_batches": 0,
        "copy_bytes": 0,
        "copies_in_flight": False,
        "stopping": False,
    }
    args.update(kw)
    return RULES.decide(**args)  # type: ignore[arg-type]


def test_a_batch_is_full_by_count_or_by_a_share_of_the_intake_bytes() -> None:
    assert not RULES.full(249, 0)
    assert RULES.full(250, 0)
    share = 64 * MiB // BATCH_BYTES_SHARE
    assert not RULES.full(1, share - 1)
    assert RULES.full(1, share)


def test_a_partial_batch_waits_only_for_a_busy_database() -> None:
    assert RULES.wait_seconds(db_busy=False) == 0.0
    assert RULES.wait_seconds(db_busy=True) == pytest.approx(0.02)


def test_the_timer_keeps_gathering_while_the_database_is_on_the_previous_batch() -> None:
    assert decide(wait_for_db=True, db_batches=1) is Flush.WAIT_FOR_DB
    assert decide(wait_for_db=True, db_batches=0) is Flush.GO
    # a full batch, or the database answering, does not wait for it
    assert decide(wait_for_db=False, db_batches=1) is Flush.GO


def test_copies_in_flight_holding_the_intake_bytes_hold_the_next_batch() -> None:
    full = 64 * MiB
    assert decide(copy_bytes=full, copies_in_flight=True) is Flush.WAIT_FOR_CONFIRMS
    assert decide(copy_bytes=full - 1, copies_in_flight=True) is Flush.GO
    assert decide(copy_bytes=full, copies_in_flight=False) is Flush.GO


def test_a_stopping_relay_sends_what_it_gathered() -> None:
    assert decide(stopping=True, wait_for_db=True, db_batches=3) is Flush.GO
    assert decide(stopping=True, copy_bytes=10**12, copies_in_flight=True) is Flush.GO


def step(**kw: int | bool) -> IntakeStep:
    args: dict[str, int | bool] = {
        "held_bytes": 0,
        "held_count": 0,
        "busiest": 0,
        "paused": False,
        "prefetch": 250,
        "max_prefetch": 250,
        "intake_max_bytes": 64 * MiB,
    }
    args.update(kw)
    return intake_step(**args)  # type: ignore[arg-type]


def test_intake_pauses_above_its_bytes_once() -> None:
    assert step(held_bytes=64 * MiB) is IntakeStep.KEEP
    assert step(held_bytes=64 * MiB + 1) is IntakeStep.PAUSE
    assert step(held_bytes=64 * MiB + 1, paused=True) is IntakeStep.KEEP


def test_a_lowered_prefetch_full_of_small_messages_regrows() -> None:
    small = 16 * MiB  # a quarter of intake_max_bytes
    full = {"prefetch": 10, "held_count": 20, "busiest": 10}  # one consumer holds its prefetch
    assert step(**full, held_bytes=small) is IntakeStep.REGROW
    assert step(**{**full, "busiest": 9}, held_bytes=small) is IntakeStep.KEEP
    assert step(**full, held_bytes=small + 1) is IntakeStep.KEEP
    assert step(prefetch=250, held_count=250, busiest=250, held_bytes=1) is IntakeStep.KEEP
    assert step(**full, held_bytes=1, paused=True) is IntakeStep.KEEP


def test_consumers_start_with_one_message_and_grow_to_what_the_sizes_allow() -> None:
    """RabbitMQ pushes a whole prefetch before the intake bound can cancel the consumers: a
    worker starts with one message per consumer, and regrows as soon as one holds it."""
    assert start_prefetch(250) == 1
    assert start_prefetch(1) == 1
    # the first 2 KiB document of an outbox: straight to the full prefetch
    assert step(prefetch=1, held_count=1, busiest=1, held_bytes=2048) is IntakeStep.REGROW
    # one 1.4 MB document per consumer of 16 MiB: a larger prefetch would not fit, no restart
    sixteen = {"intake_max_bytes": 16 * MiB, "consumers": 10}
    big = 1_400_000
    assert step(prefetch=1, held_count=1, busiest=1, held_bytes=big, **sixteen) is (IntakeStep.KEEP)
    # 64 KiB documents: 12 each fit half the bound between ten consumers
    assert (
        step(prefetch=1, held_count=1, busiest=1, held_bytes=64 * 1024, **sixteen)
        is IntakeStep.REGROW
    )
    assert (
        step(prefetch=12, held_count=40, busiest=12, held_bytes=40 * 64 * 1024, **sixteen)
        is IntakeStep.KEEP
    )
    # smaller ones later: a restart only for at least twice the prefetch, or the maximum
    assert (
        step(prefetch=12, held_count=40, busiest=12, held_bytes=40 * 40 * 1024, **sixteen)
        is IntakeStep.KEEP  # 20 would fit: not worth restarting every consumer
    )
    assert (
        step(prefetch=12, held_count=40, busiest=12, held_bytes=40 * 30 * 1024, **sixteen)
        is IntakeStep.REGROW  # 27
    )
    assert (
        step(prefetch=200, held_count=200, busiest=200, held_bytes=200 * 1024) is IntakeStep.REGROW
    )  # to the maximum, 250


def test_the_prefetch_after_a_pause_fits_half_the_intake_bytes() -> None:
    # 1 MiB messages, 64 MiB intake: 32 of them fill half
    assert (
        paused_prefetch(
            held_bytes=70 * MiB, held_count=70, max_prefetch=250, intake_max_bytes=64 * MiB
        )
        == 32
    )
    # small messages: never above the configured prefetch; huge ones: at least 1
    assert (
        paused_prefetch(
            held_bytes=70 * 1024, held_count=70, max_prefetch=250, intake_max_bytes=64 * MiB
        )
        == 250
    )
    assert (
        paused_prefetch(
            held_bytes=200 * MiB, held_count=1, max_prefetch=250, intake_max_bytes=64 * MiB
        )
        == 1
    )
    assert (
        paused_prefetch(held_bytes=0, held_count=0, max_prefetch=250, intake_max_bytes=64 * MiB)
        == 250
    )


def test_the_prefetch_after_a_pause_is_shared_by_the_consumers() -> None:
    # basic.qos is per consumer: 8 outboxes of 1 MiB messages, 64 MiB intake: 4 each (32 MiB)
    assert (
        paused_prefetch(
            held_bytes=70 * MiB,
            held_count=70,
            max_prefetch=250,
            intake_max_bytes=64 * MiB,
            consumers=8,
        )
        == 4
    )
    # a lowered prefetch regrows when one consumer holds it, to a larger one only
    rules = {"paused": False, "max_prefetch": 250, "intake_max_bytes": 64 * MiB, "consumers": 8}
    small = {"held_count": 4, "held_bytes": 4 * 1024, **rules}
    assert intake_step(prefetch=4, busiest=3, **small) is IntakeStep.KEEP
    assert intake_step(prefetch=4, busiest=4, **small) is IntakeStep.REGROW


def test_intake_resumes_when_half_its_bytes_are_left() -> None:
    assert may_resume(paused=True, held_bytes=32 * MiB, intake_max_bytes=64 * MiB)
    assert not may_resume(paused=True, held_bytes=32 * MiB + 1, intake_max_bytes=64 * MiB)
    assert not may_resume(paused=False, held_bytes=0, intake_max_bytes=64 * MiB)


def test_the_rules_are_read_from_the_settings() -> None:
    from relay.config import Settings

    s = Settings(batch_size=7, batch_wait_ms=5, intake_max_bytes=8 * MiB)
    assert FlushRules.of(s) == FlushRules(batch_size=7, batch_wait_ms=5, intake_max_bytes=8 * MiB)
