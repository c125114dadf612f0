"""The Vietnamese working calendar and the due times of a delivery (pure)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import holidays

from schemas.urgency import is_urgent_priority

#: Government offices keep Vietnam's time.
VIETNAM: ZoneInfo = ZoneInfo("Asia/Ho_Chi_Minh")

#: A bound on the search for the next working day (Tết is at most about nine days off in a row).
_MAX_DAYS_OFF = 60


def is_urgent(priority: int | None) -> bool:
    """Priority 1-4, the rule the urgent lanes use too (:mod:`schemas.urgency`)."""
    return is_urgent_priority(priority)


class WorkCalendar:
    """Which days are working days in Vietnam, and when a working day ends.

    Public holidays (and the days off the law substitutes for holidays falling on a weekend)
    come from the ``holidays`` library; ``extra_holidays`` and ``makeup_working_days`` are the
    Government's announced changes for a year (an extra day off bridging a holiday, and the
    Saturday worked to make up for it), which win over the library and over weekends.
    """

    def __init__(
        self,
        *,
        extra_holidays: Iterable[dt.date] = (),
        makeup_working_days: Iterable[dt.date] = (),
        workday_end: dt.time = dt.time(17, 0),
        tz: dt.tzinfo = VIETNAM,
    ) -> None:
        self.extra_holidays = frozenset(extra_holidays)
        self.makeup_working_days = frozenset(makeup_working_days)
        both = self.extra_holidays & self.makeup_working_days
        if both:
            days = ", ".join(sorted(d.isoformat() for d in both))
            raise ValueError(f"{days}: both an extra holiday and a make-up working day")
        self.workday_end = workday_end
        self.tz = tz
        self._public = holidays.country_holidays("VN")

    def holiday_name(self, day: dt.date) -> str | None:
        """The public holiday on ``day`` (None if there is none)."""
        name = self._public.get(day)
        return str(name) if name is not None else None

    def is_working_day(self, day: dt.date) -> bool:
        if day in self.makeup_working_days:
            return True
        if day in self.extra_holidays or day.weekday() >= 5:
            return False
        return day not in self._public

    def next_working_day(self, after: dt.date) -> dt.date:
        """The first working day strictly after ``after``."""
        day = after
        for _ in range(_MAX_DAYS_OFF):
            day += dt.timedelta(days=1)
            if self.is_working_day(day):
                return day
        raise ValueError(f"no working day within {_MAX_DAYS_OFF} days after {after}")

    def end_of_day(self, day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, self.workday_end, tzinfo=self.tz)


@dataclass(frozen=True)
class DueTimes:
    """When the recipient's 01 (``ack``) and 03 (``register``) are due."""

    ack: dt.datetime
    register: dt.datetime
    urgent: bool


def due_times(
    delivered_at: dt.datetime,
    priority: int | None,
    calendar: WorkCalendar,
    urgent_seconds: float,
) -> DueTimes:
    """The due times of a delivery made at ``delivered_at`` (aware) of a document of
    ``priority``: urgent ones ``urgent_seconds`` later, others at the end of the working day
    after the (Vietnamese) day of delivery."""
    if delivered_at.tzinfo is None:
        raise ValueError("delivered_at must be timezone-aware")
    if is_urgent(priority):
        due = delivered_at + dt.timedelta(seconds=urgent_seconds)
        return DueTimes(ack=due, register=due, urgent=True)
    local_day = delivered_at.astimezone(calendar.tz).date()
    due = calendar.end_of_day(calendar.next_working_day(local_day))
    return DueTimes(ack=due, register=due, urgent=False)


@dataclass(frozen=True)
class Dating:
    """:func:`due_times` with the hub's calendar and urgent delay bound: the relay dates each
    delivery as it stores it (the deadlines job dates what was stored without)."""

    calendar: WorkCalendar
    urgent_seconds: float

    def __call__(self, delivered_at: dt.datetime, priority: int | None) -> DueTimes:
        return due_times(delivered_at, priority, self.calendar, self.urgent_seconds)


def lateness(due: dt.datetime, now: dt.datetime) -> dt.timedelta:
    """How late something due at ``due`` is at ``now`` (zero when it is not yet due)."""
    return max(now - due, dt.timedelta(0))


def describe_lateness(late: dt.timedelta) -> str:
    """``2 d 3 h 04 min`` / ``15 min 02 s``: how late, for a person."""
    total = int(late.total_seconds())
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h {minutes:02d} min"
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {seconds:02d} s"
