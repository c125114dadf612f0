"""relay.worker.timings: one batch's stages, from the times the worker noted."""

from __future__ import annotations

from relay.worker.timings import STAGES, BatchTimes


def test_each_stage_is_the_time_between_two_marks_in_milliseconds() -> None:
    times = BatchTimes(arrived=10.0, flushed=10.002, began=10.0125, stored=10.1125)
    times.published, times.confirmed = 10.1130, 10.1630
    stages = times.stages_ms(acked=10.1712)
    assert stages == {
        "gather_ms": 2.0,
        "wait_db_ms": 10.5,
        "store_ms": 100.0,
        "to_publish_ms": 0.5,
        "confirm_ms": 50.0,
        "record_ms": 8.2,
    }
    assert list(stages) == [f"{s}_ms" for s in STAGES]


def test_a_batch_with_a_stage_not_reached_gives_no_figures_rather_than_wrong_ones() -> None:
    times = BatchTimes(arrived=10.0, flushed=10.1, began=10.2, stored=10.3, published=10.4)
    assert times.stages_ms(acked=11.0) == {}  # no confirm time
    assert BatchTimes(arrived=0.0, flushed=1.0).stages_ms(acked=2.0) == {}
