"""``make bench --repeat N``: the median drain is reported, with every drain's rate."""

from __future__ import annotations

from tests.bench.runner import PhaseResult, median_drain


def _drain(rate: float | None, note: str = "") -> PhaseResult:
    r = PhaseResult("2KiB-1", "relay", 1, 2048, 100, docs_per_s=rate, drain_s=rate)
    if note:
        r.notes.append(note)
    return r


def test_the_median_drain_is_reported_with_every_rate_and_note() -> None:
    drains = [_drain(5_900.0), _drain(5_245.0, "purged 3"), _drain(6_349.0)]
    median = median_drain(drains)
    assert (median.docs_per_s, median.drain_s) == (5_900.0, 5_900.0)
    assert median.drain_rates == [5_900.0, 5_245.0, 6_349.0]
    assert median.notes == ["purged 3"]


def test_an_even_number_takes_the_lower_middle_and_a_failed_drain_counts_as_slowest() -> None:
    assert median_drain([_drain(3.0), _drain(None), _drain(1.0), _drain(2.0)]).docs_per_s == 1.0
    assert median_drain([_drain(None), _drain(4.0), _drain(5.0)]).docs_per_s == 4.0


def test_one_drain_is_reported_as_it_was() -> None:
    one = _drain(7.0)
    assert median_drain([one]) is one and one.drain_rates == []
