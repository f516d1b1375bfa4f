"""The same clinical fact from two sources: kept from both, and linked by a tag.

A GP and a hospital may both report the same vaccination or the same lab result. Both
copies are kept (each source's record stays whole and attributable), and both carry a
`meta.tag` in FACT_SYSTEM whose code is a digest of what makes them the same fact:
whose record, what (the codes), when (to the day, or to the minute for results) and,
for results, the value. `_tag=urn:health:fact|<code>` finds every copy; the portal
shows them once, naming every source.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import orjson

FACT_SYSTEM = "urn:health:fact"

# What identifies one fact, per type: the element holding its codes, its time, and
# whether the value is part of it. Types not listed are never linked.
_FACT_SHAPES: dict[str, tuple[str, tuple[str, ...], int, bool]] = {
    # type: (code element, time elements, characters of the time kept, value counts)
    "Immunization": ("vaccineCode", ("occurrenceDateTime",), 10, False),
    "Observation": ("code", ("effectiveDateTime", "effectiveInstant"), 16, True),
    "Condition": ("code", ("onsetDateTime", "recordedDate"), 10, False),
    "Procedure": ("code", ("performedDateTime",), 10, False),
}
_VALUES = ("valueQuantity", "valueCodeableConcept", "valueString", "valueBoolean", "valueInteger")


def fact_key(resource: dict[str, Any], person: str) -> str | None:
    """The digest that two reports of the same fact about `person` share; None if unlinkable."""
    shape = _FACT_SHAPES.get(str(resource.get("resourceType")))
    if shape is None:
        return None
    code_element, time_elements, time_length, with_value = shape
    codes = sorted(_codes(resource.get(code_element)))
    moment = next((resource[t] for t in time_elements if isinstance(resource.get(t), str)), None)
    if not codes or moment is None:
        return None
    parts: list[Any] = [person, resource["resourceType"], codes, moment[:time_length]]
    if with_value:
        parts.append(_value(resource))
    return hashlib.sha256(orjson.dumps(parts)).hexdigest()[:32]


def tag_fact(resource: dict[str, Any], person: str) -> None:
    """Add (or replace) the fact tag of `resource`, when it has one."""
    key = fact_key(resource, person)
    if key is None:
        return
    meta = dict(resource.get("meta") or {})
    tags = [
        t
        for t in meta.get("tag", [])
        if not (isinstance(t, dict) and t.get("system") == FACT_SYSTEM)
    ]
    meta["tag"] = [*tags, {"system": FACT_SYSTEM, "code": key}]
    resource["meta"] = meta


def _codes(concept: Any) -> Iterable[str]:
    if not isinstance(concept, dict):
        return ()
    return (
        f"{c.get('system', '')}|{c['code']}"
        for c in concept.get("coding", [])
        if isinstance(c, dict) and c.get("code")
    )


def _value(resource: dict[str, Any]) -> Any:
    for name in _VALUES:
        if name not in resource:
            continue
        value = resource[name]
        if name == "valueQuantity" and isinstance(value, dict):
            return [name, value.get("value"), value.get("code") or value.get("unit")]
        if name == "valueCodeableConcept":
            return [name, sorted(_codes(value))]
        return [name, value]
    return None
