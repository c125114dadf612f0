"""The benchmark's pure helpers: percentiles, throughput, ratios, ids, confirm bookkeeping."""

from __future__ import annotations

import pytest

from tests.bench import stats
from tests.bench.confirms import ConfirmTracker
from tests.bench.msgid import make_id, phase_like_pattern, phase_of, sent_at
from tests.bench.stats import percentile, ratio, summarize_latencies, throughput


def test_a_percentile_interpolates_between_ranks_like_numpy() -> None:
    values = [15.0, 20.0, 35.0, 40.0, 50.0]
    assert percentile(values, 0) == 15.0
    assert percentile(values, 50) == 35.0
    assert percentile(values, 100) == 50.0
    assert percentile(values, 40) == pytest.approx(29.0)  # numpy.percentile(values, 40)
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0  # input order does not matter


def test_a_percentile_of_nothing_or_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        percentile([], 50)
    with pytest.raises(ValueError, match="0-100"):
        percentile([1.0], 101)


def test_latencies_are_summarised_in_milliseconds() -> None:
    summary = summarize_latencies([i / 1000 for i in range(1, 101)])  # 1..100 ms
    assert summary is not None
    assert summary.count == 100
    assert summary.p50_ms == pytest.approx(50.5)
    assert summary.p99_ms == pytest.approx(99.01)
    assert summary.max_ms == pytest.approx(100.0)
    assert summarize_latencies([]) is None


def test_throughput_starts_the_clock_at_the_first_completion() -> None:
    assert throughput(11, 100.0, 102.0) == pytest.approx(5.0)
    assert throughput(1, 100.0, 100.0) is None
    assert throughput(5, 100.0, 100.0) is None


def test_a_ratio_with_a_missing_or_zero_side_is_none() -> None:
    assert ratio(30.0, 10.0) == pytest.approx(3.0)
    assert ratio(None, 10.0) is None
    assert ratio(10.0, None) is None
    assert ratio(10.0, 0.0) is None


def test_a_message_id_carries_its_send_time_and_phase() -> None:
    mid = make_id(7, 123456, at=1_790_000_000.123456)
    assert sent_at(mid) == pytest.approx(1_790_000_000.123456, abs=2e-6)
    assert phase_of(mid) == 7
    assert mid[14] == "8"  # UUID version 8


def test_the_like_pattern_matches_only_its_own_phase() -> None:
    import re

    def matches(pattern: str, value: str) -> bool:
        regex = "".join("." if ch == "_" else re.escape(ch) for ch in pattern)
        return re.fullmatch(regex, value) is not None

    assert matches(phase_like_pattern(7), make_id(7, 1))
    assert not matches(phase_like_pattern(7), make_id(8, 1))
    with pytest.raises(ValueError, match="phase"):
        make_id(256, 1)


def test_a_multiple_confirm_settles_every_outstanding_publish_up_to_its_tag() -> None:
    tracker = ConfirmTracker()
    for _ in range(5):
        tracker.published()
    assert tracker.settle(2, multiple=False) == [2]
    assert tracker.settle(4, multiple=True) == [1, 3, 4]
    assert tracker.outstanding == 1
    assert tracker.settle(4, multiple=True) == []
    assert tracker.settle(5, multiple=False) == [5]
    assert tracker.outstanding == 0


def test_a_profile_counts_leaf_frames_as_self_and_every_frame_once_as_inclusive() -> None:
    from tests.bench.profile import summarize

    lines = [
        "main (relay/worker/main.py:10);loop (relay/worker/loop.py:5);loop (relay/worker/loop.py:9)"
        " 3",
        "main (relay/worker/main.py:10);encode (schemas/envelope.py:80) 1",
        "",
    ]
    profile = summarize(lines)
    assert profile.total == 4
    assert profile.self_samples["loop (relay/worker/loop.py)"] == 3
    assert profile.inclusive["loop (relay/worker/loop.py)"] == 3  # not 6: once per stack
    assert profile.inclusive["main (relay/worker/main.py)"] == 4
    assert profile.self_samples["encode (schemas/envelope.py)"] == 1


def test_the_ratios_compare_the_relay_with_the_ceiling_and_the_naive_relay_per_scenario() -> None:
    from tests.bench.report import ratios
    from tests.bench.runner import PhaseResult

    def result(system: str, rate: float, p99: float) -> PhaseResult:
        r = PhaseResult("2KiB-1", system, 1, 2048, 100, docs=100, docs_per_s=rate)
        r.latency = {"count": 10, "p50_ms": 1.0, "p95_ms": 2.0, "p99_ms": p99, "max_ms": p99}
        return r

    ceiling = result("ceiling", 1000.0, 50.0)
    ceiling.latency_at_relay_load = {"p99_ms": 20.0}
    table = ratios([ceiling, result("naive", 100.0, 30.0), result("relay", 600.0, 40.0)])
    row = table["2KiB-1"]
    assert row["relay_over_ceiling"] == pytest.approx(0.6)
    assert row["relay_over_naive"] == pytest.approx(6.0)
    assert row["relay_p99_ms"] == 40.0
    assert row["ceiling_p99_ms_at_relay_load"] == 20.0
    assert ratios([result("relay", 600.0, 40.0)])["2KiB-1"]["relay_over_ceiling"] is None


def test_a_timeline_gives_each_second_of_send_time_its_count_p50_and_max() -> None:
    # sent at 100.0-100.9 with 10 ms latency; at 102.x a stall of 2 s; nothing sent at 101.x
    steady = [(100.0 + i / 10, 100.0 + i / 10 + 0.010) for i in range(10)]
    stall = [(102.2, 104.2), (102.5, 104.3), (102.9, 104.4)]
    timeline = stats.latency_timeline(stall + steady)
    assert timeline == [
        {"at_s": 0.0, "count": 10, "p50_ms": pytest.approx(10.0), "max_ms": pytest.approx(10.0)},
        {"at_s": 2.0, "count": 3, "p50_ms": pytest.approx(1800.0), "max_ms": pytest.approx(2000.0)},
    ]
    slowest = stats.slowest_second(timeline)
    assert slowest is not None and slowest["at_s"] == 2.0
    assert stats.latency_timeline([]) == [] and stats.slowest_second([]) is None
    with pytest.raises(ValueError, match="bucket_s"):
        stats.latency_timeline(steady, bucket_s=0)


def test_the_bench_takes_a_positive_paced_rate_and_refuses_any_other(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.bench.__main__ import parse_args

    assert parse_args(["--paced-rate", "800"]).paced_rate == 800.0
    assert parse_args([]).paced_rate is None
    for bad in ("0", "-5"):
        with pytest.raises(SystemExit):
            parse_args(["--paced-rate", bad])
        assert "--paced-rate must be a positive number" in capsys.readouterr().err


def test_the_ratios_say_at_which_rate_the_ceilings_own_p99_was_taken(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.bench.report import print_ratios

    row: dict[str, float | None] = {
        "relay_over_ceiling": 0.5,
        "relay_over_naive": 3.0,
        "relay_p99_ms": 40.0,
        "ceiling_p99_ms": 30.0,
        "ceiling_p99_ms_at_relay_load": 20.0,
    }
    print_ratios({"2KiB-1": row})
    assert "30.0 ms at half its own maximum" in capsys.readouterr().out
    print_ratios({"2KiB-1": row}, paced=True)
    assert "30.0 ms at the paced rate" in capsys.readouterr().out
