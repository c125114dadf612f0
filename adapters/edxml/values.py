"""edXML scalar values: dates ``yyyy/MM/dd``, timestamps ``yyyy/MM/dd HH:mm:ss`` local time.

Timestamps in edXML carry no offset: they are wall-clock time in Asia/Ho_Chi_Minh (UTC+7, no
daylight saving). They are read as aware datetimes in that zone and written converted to it.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from adapters.edxml.errors import EdxmlError

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")

DATE_FORMAT = "%Y/%m/%d"
TIMESTAMP_FORMAT = "%Y/%m/%d %H:%M:%S"
# Also read, never written: ISO-style dashes seen from some vendors.
_DATE_INPUTS = (DATE_FORMAT, "%Y-%m-%d")
_TIMESTAMP_INPUTS = (TIMESTAMP_FORMAT, "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S")


def parse_date(text: str, where: str) -> dt.date:
    for fmt in _DATE_INPUTS:
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise EdxmlError(f"{where}: {text!r} is not a date, expected yyyy/MM/dd, e.g. 2016/04/08")


def format_date(value: dt.date) -> str:
    return value.strftime(DATE_FORMAT)


def parse_timestamp(text: str, where: str) -> dt.datetime:
    for fmt in _TIMESTAMP_INPUTS:
        try:
            return dt.datetime.strptime(text, fmt).replace(tzinfo=VIETNAM)
        except ValueError:
            continue
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise EdxmlError(
            f"{where}: {text!r} is not a timestamp, expected yyyy/MM/dd HH:mm:ss "
            "(local time, Asia/Ho_Chi_Minh), e.g. 2016/04/08 09:15:00"
        ) from None
    return value.replace(tzinfo=VIETNAM) if value.tzinfo is None else value.astimezone(VIETNAM)


def format_timestamp(value: dt.datetime) -> str:
    """Wall-clock time in Asia/Ho_Chi_Minh; a naive value is taken to be in that zone already."""
    local = value if value.tzinfo is None else value.astimezone(VIETNAM)
    return local.strftime(TIMESTAMP_FORMAT)


def now() -> dt.datetime:
    """The current time in Asia/Ho_Chi_Minh, to the second (what a timestamp can hold)."""
    return dt.datetime.now(VIETNAM).replace(microsecond=0)


def parse_int(text: str, where: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise EdxmlError(f"{where}: {text!r} is not a whole number") from None


def parse_bool(text: str, where: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise EdxmlError(f"{where}: {text!r} is not a boolean, expected true or false")


def format_bool(value: bool) -> str:
    return "true" if value else "false"
