"""Decree 30 due times on the Vietnamese working calendar (relay/deadlines/calendar.py)."""

from __future__ import annotations

import datetime as dt

import pytest

from relay.deadlines.calendar import (
    VIETNAM,
    WorkCalendar,
    describe_lateness,
    due_times,
    is_urgent,
    lateness,
)


def vn(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> dt.datetime:
    return dt.datetime(y, m, d, hh, mm, tzinfo=VIETNAM)


def due(at: dt.datetime, priority: int | None = 0, cal: WorkCalendar | None = None) -> dt.datetime:
    return due_times(at, priority, cal or WorkCalendar(), urgent_seconds=900).ack


def test_a_normal_document_delivered_on_a_friday_evening_is_due_at_the_end_of_monday() -> None:
    assert due(vn(2026, 11, 27, 19, 30)) == vn(2026, 11, 30, 17, 0)


def test_one_delivered_on_a_tuesday_morning_is_due_at_the_end_of_wednesday() -> None:
    assert due(vn(2026, 12, 1, 9, 0)) == vn(2026, 12, 2, 17, 0)


def test_the_day_of_delivery_is_the_vietnamese_day_not_the_utc_one() -> None:
    # Monday 30 November 2026 at 23:30 UTC is already Tuesday 06:30 in Hà Nội.
    at = dt.datetime(2026, 11, 30, 23, 30, tzinfo=dt.UTC)
    assert due(at) == vn(2026, 12, 2, 17, 0)


def test_a_monday_holiday_moves_the_due_time_to_tuesday() -> None:
    # 27 April 2026 is the day off substituted for Giỗ Tổ Hùng Vương (a Sunday that year).
    cal = WorkCalendar()
    assert cal.holiday_name(dt.date(2026, 4, 27)) is not None
    assert due(vn(2026, 4, 24, 18, 0), cal=cal) == vn(2026, 4, 28, 17, 0)


def test_tet_is_skipped_whole() -> None:
    # Tết 2026: Monday 16 to Friday 20 February are days off.
    assert due(vn(2026, 2, 13, 16, 0)) == vn(2026, 2, 23, 17, 0)


def test_an_announced_extra_day_off_is_not_a_working_day() -> None:
    cal = WorkCalendar(extra_holidays=[dt.date(2026, 11, 30)])
    assert due(vn(2026, 11, 27, 19, 30), cal=cal) == vn(2026, 12, 1, 17, 0)


def test_an_announced_make_up_saturday_is_a_working_day() -> None:
    cal = WorkCalendar(makeup_working_days=[dt.date(2026, 11, 28)])
    assert due(vn(2026, 11, 27, 19, 30), cal=cal) == vn(2026, 11, 28, 17, 0)


def test_a_day_cannot_be_both_an_extra_holiday_and_a_make_up_day() -> None:
    day = dt.date(2026, 11, 28)
    with pytest.raises(ValueError, match="2026-11-28"):
        WorkCalendar(extra_holidays=[day], makeup_working_days=[day])


def test_the_end_of_the_working_day_is_a_setting() -> None:
    cal = WorkCalendar(workday_end=dt.time(16, 30))
    assert due(vn(2026, 11, 27, 19, 30), cal=cal) == vn(2026, 11, 30, 16, 30)


@pytest.mark.parametrize("priority", [1, 2, 3, 4])
def test_urgent_documents_are_due_after_the_urgent_deadline_even_at_the_weekend(
    priority: int,
) -> None:
    at = vn(2026, 11, 28, 22, 0)  # a Saturday night
    times = due_times(at, priority, WorkCalendar(), urgent_seconds=900)
    assert times.urgent
    assert times.ack == times.register == at + dt.timedelta(seconds=900)


@pytest.mark.parametrize("priority", [0, None, 5])
def test_ordinary_priorities_are_not_urgent(priority: int | None) -> None:
    assert not is_urgent(priority)


def test_a_naive_delivery_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        due_times(dt.datetime(2026, 11, 27, 19, 30), 0, WorkCalendar(), 900)


def test_lateness_is_zero_before_the_due_time_and_reads_well_after() -> None:
    d = vn(2026, 11, 30, 17, 0)
    assert lateness(d, d - dt.timedelta(minutes=1)) == dt.timedelta(0)
    late = lateness(d, d + dt.timedelta(days=2, hours=3, minutes=4))
    assert describe_lateness(late) == "2 d 3 h 04 min"
    assert describe_lateness(dt.timedelta(minutes=15, seconds=2)) == "15 min 02 s"
