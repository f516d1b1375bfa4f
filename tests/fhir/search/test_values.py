"""Typed search values (health/fhir/search/values.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from health.fhir.search.values import approximate_window, parse_date

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_ap_widens_a_date_by_a_tenth_of_its_distance_from_now() -> None:
    value = parse_date("ap2016-11-30", "date")

    low, high = approximate_window(value, NOW)

    assert value.low - low == high - value.high
    assert abs((value.low - low) - (NOW - value.low) / 10) < timedelta(seconds=1)


@pytest.mark.parametrize("raw", ["ap9999-12-31", "ap9999", "ap0001", "ap0001-01-01T00:00:00Z"])
def test_ap_at_the_ends_of_the_calendar_stops_there(raw: str) -> None:
    """The widened window of a date near year 1 or 9999 used to pass what a datetime
    holds: an OverflowError, a 500."""
    value = parse_date(raw, "date")

    low, high = approximate_window(value, NOW)

    assert datetime.min.replace(tzinfo=UTC) <= low <= value.low
    assert value.high <= high <= datetime.max.replace(tzinfo=UTC)
