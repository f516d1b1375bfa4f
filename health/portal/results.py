"""Lab results and measurements per test: the values over time, with units and ranges.

A test is an Observation code; an Observation with components (blood pressure) gives
one series per component. A value is abnormal when the source says so
(https://hl7.org/fhir/R4/valueset-observation-interpretation.html) or, failing that,
when it lies outside the reference range that came with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from health.portal.datatypes import (
    JsonDict,
    codes_of_all,
    concept_text,
    first_code,
    first_time,
    quantity_unit,
    quantity_value,
)
from health.portal.record import Record
from health.portal.sources import Reported, merge_facts

# Interpretation codes that flag a value as outside normal.
_ABNORMAL = frozenset({"A", "AA", "H", "HH", "HU", "L", "LL", "LU", ">", "<", "POS", "W"})
_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
_TIME = ("effectiveDateTime", "effectiveInstant", "effectivePeriod", "issued")


@dataclass(frozen=True)
class Measurement:
    """One value of a series."""

    when: datetime
    value: float | None
    # The value as text when it is not a number (a coded or string result).
    text: str
    unit: str
    low: float | None
    high: float | None
    abnormal: bool
    interpretation: str
    entry: Reported


@dataclass
class Series:
    """The values of one measured quantity, oldest first."""

    name: str
    unit: str
    points: list[Measurement] = field(default_factory=list)

    @property
    def latest(self) -> Measurement | None:
        return self.points[-1] if self.points else None

    @property
    def reference_range(self) -> tuple[float | None, float | None]:
        """The latest reference range given (ranges change with methods and age)."""
        for point in reversed(self.points):
            if point.low is not None or point.high is not None:
                return point.low, point.high
        return None, None

    @property
    def numeric(self) -> list[Measurement]:
        return [point for point in self.points if point.value is not None]


@dataclass
class LabTest:
    """Everything recorded for one test code."""

    code: str
    name: str
    category: str
    series: list[Series]

    @property
    def latest(self) -> Measurement | None:
        points = [series.latest for series in self.series if series.latest]
        return max(points, key=lambda point: point.when) if points else None

    @property
    def count(self) -> int:
        return max((len(series.points) for series in self.series), default=0)


def lab_tests(record: Record) -> list[LabTest]:
    """Every test in the record, by name; each test's values oldest first."""
    tests: dict[str, LabTest] = {}
    observations = sorted(
        (o for o in record.of_type("Observation") if _when(o) is not None),
        key=lambda o: (_when(o), str(o.get("id"))),
    )
    for entry in merge_facts(observations, record):
        observation = entry.resource
        code = first_code(observation.get("code"))
        when = _when(observation)
        if code is None or when is None:
            continue
        test = tests.get(code)
        if test is None:
            test = tests[code] = LabTest(
                code=code,
                name=concept_text(observation.get("code"), code),
                category=concept_text((observation.get("category") or [None])[0]),
                series=[],
            )
        parts = observation.get("component") or [observation]
        for part in parts:
            if not isinstance(part, dict):
                continue
            name = concept_text(part.get("code"), test.name) if part is not observation else ""
            series = next((s for s in test.series if s.name == name), None)
            point = measurement(part, when, entry)
            if series is None:
                series = Series(name=name, unit=point.unit)
                test.series.append(series)
            series.points.append(point)
    return sorted(tests.values(), key=lambda test: test.name.casefold())


def lab_test(record: Record, code: str) -> LabTest | None:
    """The test with `code`; None when the record holds no result for it."""
    return next((test for test in lab_tests(record) if test.code == code), None)


def latest_results(record: Record, limit: int) -> list[LabTest]:
    """The tests with the most recent values first (the front page's newest results)."""
    tests = [test for test in lab_tests(record) if test.latest is not None]
    tests.sort(key=lambda test: test.latest.when if test.latest else datetime.min, reverse=True)
    return tests[:limit]


def _when(observation: JsonDict) -> datetime | None:
    return first_time(observation, _TIME)


def measurement(part: JsonDict, when: datetime, entry: Reported) -> Measurement:
    quantity = part.get("valueQuantity")
    value = quantity_value(quantity)
    text = _value_text(part)
    ranges = part.get("referenceRange") or []
    low = high = None
    if ranges and isinstance(ranges[0], dict):
        low = quantity_value(ranges[0].get("low"))
        high = quantity_value(ranges[0].get("high"))
    interpretation = part.get("interpretation") or []
    flagged = {code for system, code in codes_of_all(interpretation) if system == _INTERPRETATION}
    if flagged:
        abnormal = bool(flagged & _ABNORMAL)
    else:
        abnormal = value is not None and (
            (low is not None and value < low) or (high is not None and value > high)
        )
    return Measurement(
        when=when,
        value=value,
        text=text,
        unit=quantity_unit(quantity),
        low=low,
        high=high,
        abnormal=abnormal,
        interpretation=concept_text(interpretation[0]) if interpretation else "",
        entry=entry,
    )


def _value_text(part: JsonDict) -> str:
    if "valueCodeableConcept" in part:
        return concept_text(part["valueCodeableConcept"])
    for name in ("valueString", "valueInteger", "valueBoolean"):
        if name in part:
            return str(part[name])
    return ""
