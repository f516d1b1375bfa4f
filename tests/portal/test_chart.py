"""Chart geometry: the values as a polyline, the reference range as a band, ticks."""

from __future__ import annotations

from datetime import UTC, datetime

from health.portal.chart import HEIGHT, MARGIN_BOTTOM, MARGIN_TOP, chart_for, nice_ticks, time_ticks
from health.portal.results import Measurement, Series
from health.portal.sources import Reported

_ENTRY = Reported(resource={}, reports=())


def _series(values: list[tuple[int, float]], low: float | None, high: float | None) -> Series:
    points = [
        Measurement(
            when=datetime(year, 6, 1, tzinfo=UTC),
            value=value,
            text="",
            unit="mmol/L",
            low=low,
            high=high,
            abnormal=(high is not None and value > high),
            interpretation="",
            entry=_ENTRY,
        )
        for year, value in values
    ]
    return Series(name="", unit="mmol/L", points=points)


def test_values_rise_up_the_chart_and_time_runs_left_to_right() -> None:
    chart = chart_for(_series([(2020, 5.0), (2021, 7.0), (2022, 6.0)], 4.0, 6.5))
    assert chart is not None
    xs = [m.x for m in chart.markers]
    ys = [m.y for m in chart.markers]
    assert xs == sorted(xs)
    assert ys[1] < ys[2] < ys[0]  # 7.0 highest on the page (smallest y), then 6.0, then 5.0
    assert chart.polyline == " ".join(f"{m.x},{m.y}" for m in chart.markers)
    assert all(MARGIN_TOP <= y <= HEIGHT - MARGIN_BOTTOM for y in ys)


def test_the_reference_range_is_a_band_and_values_above_it_are_marked() -> None:
    chart = chart_for(_series([(2020, 5.0), (2021, 7.0), (2022, 6.0)], 4.0, 6.5))
    assert chart is not None and chart.band is not None
    above = chart.markers[1]
    assert above.abnormal and above.y < chart.band.y  # drawn above the band's top edge
    inside = chart.markers[0]
    assert not inside.abnormal and chart.band.y <= inside.y <= chart.band.y + chart.band.height


def test_a_series_without_numbers_has_no_chart_and_one_without_range_no_band() -> None:
    assert chart_for(Series(name="", unit="")) is None
    chart = chart_for(_series([(2020, 80.0), (2024, 82.0)], None, None))
    assert chart is not None and chart.band is None


def test_ticks_are_round_numbers_and_years_or_months() -> None:
    assert nice_ticks(3.7, 11.2) == [2.0, 4.0, 6.0, 8.0, 10.0, 12.0]
    yearly, ticks = time_ticks(datetime(2015, 3, 1, tzinfo=UTC), datetime(2024, 5, 1, tzinfo=UTC))
    assert yearly and ticks[0].year == 2016 and all(t.month == 1 for t in ticks)
    monthly, ticks = time_ticks(datetime(2024, 1, 15, tzinfo=UTC), datetime(2024, 6, 1, tzinfo=UTC))
    assert not monthly and [t.month for t in ticks] == [2, 3, 4, 5, 6]
