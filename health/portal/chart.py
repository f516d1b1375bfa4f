"""Trend chart geometry: numbers and SVG path strings for one series of values.

Pure: values and times in, coordinates out. The template draws them (a polyline of the
values, the reference range as a band, abnormal values marked, axis ticks) and formats
the tick labels in the reader's language.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from health.portal.results import Series

WIDTH = 640
HEIGHT = 260
# Room for the axis labels: left for values, bottom for dates.
MARGIN_LEFT = 56
MARGIN_RIGHT = 16
MARGIN_TOP = 12
MARGIN_BOTTOM = 36


@dataclass(frozen=True)
class Marker:
    x: float
    y: float
    value: float
    when: datetime
    abnormal: bool


@dataclass(frozen=True)
class Band:
    """The reference range, as a rectangle across the plot."""

    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class ValueTick:
    y: float
    value: float


@dataclass(frozen=True)
class TimeTick:
    x: float
    when: datetime


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    plot_left: float
    plot_right: float
    plot_top: float
    plot_bottom: float
    polyline: str
    markers: tuple[Marker, ...]
    band: Band | None
    value_ticks: tuple[ValueTick, ...]
    time_ticks: tuple[TimeTick, ...]
    # Whether the time ticks fall on years (else months): what their labels show.
    yearly: bool


def chart_for(series: Series, width: int = WIDTH, height: int = HEIGHT) -> Chart | None:
    """The chart of `series`; None when it has no numeric value to draw."""
    points = series.numeric
    if not points:
        return None
    low, high = series.reference_range
    values = [p.value for p in points if p.value is not None]
    bounds = [*values, *(v for v in (low, high) if v is not None)]
    v_min, v_max = _padded(min(bounds), max(bounds))
    ticks = nice_ticks(v_min, v_max)
    v_min, v_max = min(v_min, ticks[0]), max(v_max, ticks[-1])
    t_min, t_max = points[0].when, points[-1].when
    if t_max - t_min < timedelta(days=1):
        t_min, t_max = t_min - timedelta(days=15), t_max + timedelta(days=15)
    left, right = float(MARGIN_LEFT), float(width - MARGIN_RIGHT)
    top, bottom = float(MARGIN_TOP), float(height - MARGIN_BOTTOM)

    def x_of(when: datetime) -> float:
        span = (t_max - t_min).total_seconds()
        return round(left + (when - t_min).total_seconds() / span * (right - left), 1)

    def y_of(value: float) -> float:
        return round(bottom - (value - v_min) / (v_max - v_min) * (bottom - top), 1)

    markers = tuple(
        Marker(x_of(p.when), y_of(p.value), p.value, p.when, p.abnormal)
        for p in points
        if p.value is not None
    )
    band = None
    if low is not None or high is not None:
        band_top = y_of(high if high is not None else v_max)
        band_bottom = y_of(low if low is not None else v_min)
        band = Band(left, band_top, right - left, round(band_bottom - band_top, 1))
    yearly, times = time_ticks(t_min, t_max)
    return Chart(
        width=width,
        height=height,
        plot_left=left,
        plot_right=right,
        plot_top=top,
        plot_bottom=bottom,
        polyline=" ".join(f"{m.x},{m.y}" for m in markers),
        markers=markers,
        band=band,
        value_ticks=tuple(ValueTick(y_of(v), v) for v in ticks if v_min <= v <= v_max),
        time_ticks=tuple(TimeTick(x_of(t), t) for t in times),
        yearly=yearly,
    )


def _padded(low: float, high: float) -> tuple[float, float]:
    """A value range with some air above and below (and some width when flat)."""
    if high == low:
        spread = abs(high) * 0.1 or 1.0
        return low - spread, high + spread
    spread = (high - low) * 0.08
    return low - spread, high + spread


def nice_ticks(low: float, high: float, wanted: int = 5) -> list[float]:
    """Round values (steps of 1, 2 or 5 times a power of ten) covering [low, high]."""
    raw = (high - low) / max(wanted - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    if ticks[-1] < high:
        ticks.append(round(value, 10))
    return ticks


def time_ticks(start: datetime, end: datetime, wanted: int = 6) -> tuple[bool, list[datetime]]:
    """Ticks on year starts when the span is over two years, else on month starts."""
    years = end.year - start.year
    if years >= 2:
        step = max(1, math.ceil(years / wanted))
        first = start.year + 1
        return True, [datetime(year, 1, 1, tzinfo=UTC) for year in range(first, end.year + 1, step)]
    months = (end.year - start.year) * 12 + end.month - start.month
    step = max(1, math.ceil(months / wanted))
    ticks = []
    index = start.year * 12 + start.month  # the month after start's month (0-based)
    while True:
        year, month = divmod(index, 12)
        tick = datetime(year, month + 1, 1, tzinfo=UTC)
        if tick > end:
            break
        if tick >= start:
            ticks.append(tick)
        index += step
    return False, ticks
