"""edXML scalar values, read leniently and written in the standard's form.

The standard writes dates ``yyyy/MM/dd`` and timestamps ``yyyy/MM/dd HH:mm:ss`` in local time.
Real packages also hold ``dd/MM/yyyy``, ``yyyy-MM-dd`` (with or without a time), impossible
dates (``2014/02/30``) and template text (``0(Độ ưu tiên…)``). Each text is read into a
:class:`Reading`: the typed value (``None`` when the text has none), whether the text must be
kept as written (it is not the standard's form of that value), and a warning for a person.
Nothing is refused here: what the text cannot give is kept as text (``as_written``).

Timestamps in edXML carry no offset: they are wall-clock time in Asia/Ho_Chi_Minh (UTC+7, no
daylight saving). They are read as aware datetimes in that zone and written converted to it.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")

DATE_FORMAT = "%Y/%m/%d"
TIMESTAMP_FORMAT = "%Y/%m/%d %H:%M:%S"

_TIME = r"(?:[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,6})\d*)?)?)?\s*(Z|[+-]\d{2}:?\d{2})?"
#: yyyy/MM/dd or yyyy-MM-dd, maybe with a time.
_YEAR_FIRST = re.compile(r"(\d{4})[/-](\d{1,2})[/-](\d{1,2})" + _TIME)
#: dd/MM/yyyy or dd-MM-yyyy (the Vietnamese order, never MM/dd), maybe with a time.
_DAY_FIRST = re.compile(r"(\d{1,2})[/-](\d{1,2})[/-](\d{4})" + _TIME)
_FORMS = "yyyy/MM/dd, dd/MM/yyyy or yyyy-MM-dd"

#: Code lists of OtherInfo/Priority and SteeringType (the VNPT template states them; SteeringType
#: 0 is what senders built on the Bkav SDK's enum write for "not steering").
CODE_LISTS: dict[str, dict[int, str]] = {
    "Priority": {0: "Thường", 1: "Khẩn", 2: "Thượng khẩn", 3: "Hỏa tốc", 4: "Hỏa tốc hẹn giờ"},
    "SteeringType": {
        0: "Không phải chỉ đạo (as the Bkav SDK writes it)",
        1: "Không phải chỉ đạo",
        2: "Chỉ đạo",
        3: "Báo cáo chỉ đạo",
    },
}


@dataclass(frozen=True)
class Reading:
    """What one element's text gives."""

    value: Any
    #: The text is not the standard's form of ``value`` (or there is no value): keep it.
    keep: bool = False
    warning: str | None = None


def _parts(text: str) -> tuple[tuple[int, int, int], tuple[int, int, int, int] | None, str] | None:
    """((year, month, day), (h, m, s, µs) or None, offset) of a date text, None if no form fits."""
    match = _YEAR_FIRST.fullmatch(text)
    if match is not None:
        y, mo, d = match.group(1, 2, 3)
    else:
        match = _DAY_FIRST.fullmatch(text)
        if match is None:
            return None
        d, mo, y = match.group(1, 2, 3)
    h, mi, s, frac, offset = match.group(4, 5, 6, 7, 8)
    clock = None
    if h is not None:
        micro = int((frac or "0").ljust(6, "0"))
        clock = (int(h), int(mi), int(s or 0), micro)
    return (int(y), int(mo), int(d)), clock, offset or ""


def read_date(text: str, where: str) -> Reading:
    parts = _parts(text)
    if parts is None:
        return Reading(
            None, True, f"{where}: {text!r} is not a date in a known form ({_FORMS}); kept as text"
        )
    (y, mo, d), _, _ = parts
    try:
        value = dt.date(y, mo, d)
    except ValueError:
        return Reading(None, True, f"{where}: {text!r} is not a real date; kept as text")
    if text == format_date(value):
        return Reading(value)
    return Reading(
        value,
        True,
        f"{where}: {text!r} is not in the standard form yyyy/MM/dd; read as "
        f"{format_date(value)} and written back as sent",
    )


def read_timestamp(text: str, where: str) -> Reading:
    parts = _parts(text)
    if parts is None:
        return Reading(
            None,
            True,
            f"{where}: {text!r} is not a timestamp in a known form (yyyy/MM/dd HH:mm:ss, "
            "also dd/MM/yyyy or with dashes); kept as text",
        )
    (y, mo, d), clock, offset = parts
    h, mi, s, micro = clock or (0, 0, 0, 0)
    zone: dt.tzinfo = VIETNAM
    if offset == "Z":
        zone = dt.UTC
    elif offset:
        sign = -1 if offset[0] == "-" else 1
        digits = offset[1:].replace(":", "")
        zone = dt.timezone(sign * dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
    try:
        value = dt.datetime(y, mo, d, h, mi, s, micro, tzinfo=zone).astimezone(VIETNAM)
    except ValueError:
        return Reading(None, True, f"{where}: {text!r} is not a real date and time; kept as text")
    if text == format_timestamp(value):
        return Reading(value)
    # ISO dashes and a "T" were read before this reader became lenient: no warning for them.
    iso_like = _YEAR_FIRST.fullmatch(text) is not None and clock is not None
    return Reading(
        value,
        True,
        None
        if iso_like
        else f"{where}: {text!r} is not in the standard form yyyy/MM/dd HH:mm:ss; read as "
        f"{format_timestamp(value)} and written back as sent",
    )


def read_int(text: str, where: str, tag: str = "") -> Reading:
    try:
        value = int(text)
    except ValueError:
        return Reading(None, True, f"{where}: {text!r} is not a whole number; kept as text")
    codes = CODE_LISTS.get(tag)
    warning = None
    if codes is not None and value not in codes:
        known = ", ".join(f"{k} {v}" for k, v in codes.items())
        warning = f"{where}: {value} is not a known {tag} ({known}); kept as given"
    return Reading(value, str(value) != text, warning)


def read_bool(text: str, where: str) -> Reading:
    lowered = text.lower()
    if lowered in ("true", "1"):
        return Reading(True, text != "true")
    if lowered in ("false", "0"):
        return Reading(False, text != "false")
    return Reading(None, True, f"{where}: {text!r} is not true or false; kept as text")


def read_document_id(text: str, where: str) -> Reading:
    """``OrganId,yyyy/MM/dd,notation`` with the date in the standard's form, so that a status
    whose ``ResponseFor/DocumentId`` spells the date with dashes finds its document."""
    parts = text.split(",")
    if len(parts) < 3:
        return Reading(text)
    match = _YEAR_FIRST.fullmatch(parts[1].strip())
    if match is None or "-" not in parts[1] or match.group(4) is not None:
        return Reading(text)
    try:
        date = dt.date(*(int(g) for g in match.group(1, 2, 3)))
    except ValueError:
        return Reading(text)
    normal = ",".join([parts[0], format_date(date), *parts[2:]])
    return Reading(
        normal,
        True,
        f"{where}: the date in {text!r} is written with dashes; read as {normal!r}",
    )


def read_scalar(kind: str, text: str, where: str, tag: str = "") -> Reading:
    """The reading of a non-empty ``text`` of the layout's scalar ``kind``."""
    if kind == "int":
        return read_int(text, where, tag)
    if kind == "bool":
        return read_bool(text, where)
    if kind == "date":
        return read_date(text, where)
    if kind == "datetime":
        return read_timestamp(text, where)
    if kind == "docid":
        return read_document_id(text, where)
    return Reading(text)


def format_date(value: dt.date) -> str:
    return value.strftime(DATE_FORMAT)


def format_timestamp(value: dt.datetime) -> str:
    """Wall-clock time in Asia/Ho_Chi_Minh; a naive value is taken to be in that zone already."""
    local = value if value.tzinfo is None else value.astimezone(VIETNAM)
    return local.strftime(TIMESTAMP_FORMAT)


def now() -> dt.datetime:
    """The current time in Asia/Ho_Chi_Minh, to the second (what a timestamp can hold)."""
    return dt.datetime.now(VIETNAM).replace(microsecond=0)


def format_bool(value: bool) -> str:
    return "true" if value else "false"
