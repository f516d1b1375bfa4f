"""Dates as search compares them: the range of instants a value covers.

https://hl7.org/fhir/R4/search.html#date: a date, dateTime or instant stands for the
whole range its precision spans (2020 is the year 2020), a Period for its start to its
end, a Timing for its outer limits. Extraction stores these ranges at write time; the
search side can read a partial date in a query the same way.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

# The open ends of a Period (https://hl7.org/fhir/R4/search.html#date): a missing
# start is the far past, a missing end the far future.
FAR_PAST = datetime(1, 1, 1, tzinfo=UTC)
FAR_FUTURE = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)

DateRange = tuple[datetime, datetime]

# date, dateTime and instant: https://hl7.org/fhir/R4/datatypes.html#dateTime
_DATE = re.compile(
    r"(\d{4})(?:-(\d{2})(?:-(\d{2})"
    r"(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:\d{2})?)?)?)?"
)


@lru_cache(maxsize=8192)
def date_range(value: str) -> DateRange | None:
    """The instants [low, high) a date, dateTime or instant covers, by its precision.

    A year covers the year, a day the day, a time to the second that second, a time
    with fractions of a second the last digit's unit. A value without a time zone (a
    date, or a dateTime without one) is read as UTC. None when `value` is no date.
    """
    match = _DATE.fullmatch(value.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        if month is None:
            low = datetime(int(year), 1, 1, tzinfo=UTC)
            return low, _clamp(lambda: low.replace(year=low.year + 1))
        if day is None:
            low = datetime(int(year), int(month), 1, tzinfo=UTC)
            return low, _clamp(lambda: _next_month(low))
        if hour is None:
            low = datetime(int(year), int(month), int(day), tzinfo=UTC)
            return low, _clamp(lambda: low + timedelta(days=1))
        tz = UTC if zone in (None, "Z") else _offset(zone)
        micros = int((fraction or "0")[:6].ljust(6, "0"))
        local = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second or 0), micros, tz
        )
        low = local.astimezone(UTC)
        if second is None:
            step = timedelta(minutes=1)
        elif fraction is None:
            step = timedelta(seconds=1)
        else:
            step = timedelta(microseconds=10 ** max(0, 6 - len(fraction)))
        return low, _clamp(lambda: low + step)
    except (ValueError, OverflowError):
        return None


def period_range(period: dict[str, Any]) -> DateRange | None:
    """[start's low, end's high) of a Period; a missing end is open. None if unreadable."""
    start, end = period.get("start"), period.get("end")
    if start is None and end is None:
        return None
    low = date_range(start) if type(start) is str else None
    high = date_range(end) if type(end) is str else None
    if (start is not None and low is None) or (end is not None and high is None):
        return None
    return (low[0] if low else FAR_PAST, high[1] if high else FAR_FUTURE)


def timing_range(timing: dict[str, Any]) -> DateRange | None:
    """The outer limits of a Timing: its events and its repeat's boundsPeriod.

    https://hl7.org/fhir/R4/search.html#date: "the specified scheduling details are
    ignored and only the outer limits matter".
    """
    ranges: list[DateRange] = []
    for event in timing.get("event") or ():
        found = date_range(event) if type(event) is str else None
        if found is not None:
            ranges.append(found)
    repeat = timing.get("repeat")
    if type(repeat) is dict and type(repeat.get("boundsPeriod")) is dict:
        found = period_range(repeat["boundsPeriod"])
        if found is not None:
            ranges.append(found)
    if not ranges:
        return None
    return min(r[0] for r in ranges), max(r[1] for r in ranges)


def _next_month(moment: datetime) -> datetime:
    if moment.month == 12:
        return moment.replace(year=moment.year + 1, month=1)
    return moment.replace(month=moment.month + 1)


def _clamp(high: Any) -> datetime:
    # The last year's end is past what datetime holds: the far future stands for it.
    try:
        return min(high(), FAR_FUTURE)
    except (ValueError, OverflowError):
        return FAR_FUTURE


def _offset(zone: str) -> timezone:
    sign = -1 if zone[0] == "-" else 1
    return timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
