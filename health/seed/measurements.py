"""Plausible measurement values: a level that drifts over the years, plus noise.

Levels come from world.json (`5.4`, `[125, 80]` for a blood pressure, or
`{"from": 64, "to": 51}` drifting over the checkups); noise and reference ranges from
catalogue.json. Values outside the reference range are flagged as FHIR interpretations
(https://hl7.org/fhir/R4/valueset-observation-interpretation.html).
"""

from __future__ import annotations

import random
from typing import Any

UCUM = "http://unitsofmeasure.org"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
_FLAGS = {"H": ("High", "Over referenceområdet"), "L": ("Low", "Under referenceområdet")}

Level = float | list[float]


class Measurements:
    """Values for the labs of catalogue.json, drawn from one seeded generator."""

    def __init__(self, labs: dict[str, Any], rng: random.Random) -> None:
        self._labs = labs
        self._rng = rng

    @staticmethod
    def level(written: Any, progress: float) -> Level | None:
        """The level world.json gives at `progress` (0 to 1) through a series, if any."""
        if isinstance(written, dict):
            start, end = written["from"], written["to"]
            if isinstance(start, list):
                return [a + (b - a) * progress for a, b in zip(start, end, strict=True)]
            return float(start + (end - start) * progress)
        return written

    def result(self, lab: str, level: Level | None) -> dict[str, Any]:
        """The value elements of an Observation of `lab` around `level`."""
        definition = self._labs[lab]
        mean = definition["mean"] if level is None else level
        if "components" in definition:
            return {
                "component": [
                    self._component(definition, component, centre, spread)
                    for component, centre, spread in zip(
                        definition["components"], mean, definition["sd"], strict=True
                    )
                ]
            }
        value = self._draw(float(mean), definition["sd"], definition["decimals"])
        return _valued(value, definition["unit"], definition.get("low"), definition.get("high"))

    def _component(
        self, definition: dict[str, Any], component: dict[str, Any], centre: float, spread: float
    ) -> dict[str, Any]:
        value = self._draw(centre, spread, definition["decimals"])
        code = {
            "coding": [
                {
                    "system": "http://loinc.org",
                    "code": component["loinc"],
                    "display": component["display"],
                }
            ],
            "text": component["display"],
        }
        return {
            "code": code,
            **_valued(value, definition["unit"], component.get("low"), component.get("high")),
        }

    def _draw(self, mean: float, spread: float, decimals: int) -> float | int:
        value = max(self._rng.gauss(mean, spread), 0.0)
        return round(value) if decimals == 0 else round(value, decimals)


def _valued(value: float | int, unit: str, low: float | None, high: float | None) -> dict[str, Any]:
    """valueQuantity, with referenceRange and interpretation when a range is known."""
    elements: dict[str, Any] = {"valueQuantity": _quantity(value, unit)}
    if low is None and high is None:
        return elements
    reference: dict[str, Any] = {}
    if low is not None:
        reference["low"] = _quantity(low, unit)
    if high is not None:
        reference["high"] = _quantity(high, unit)
    elements["referenceRange"] = [reference]
    flag = (
        "H"
        if high is not None and value > high
        else "L"
        if low is not None and value < low
        else None
    )
    if flag is None:
        elements["interpretation"] = [_interpretation("N", "Normal", "Normal")]
    else:
        elements["interpretation"] = [_interpretation(flag, *_FLAGS[flag])]
    return elements


def _interpretation(code: str, display: str, text: str) -> dict[str, Any]:
    return {"coding": [{"system": INTERPRETATION, "code": code, "display": display}], "text": text}


def _quantity(value: float | int, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}
