"""Reading FHIR R4 datatypes as the portal shows them: text of concepts, times, amounts.

https://hl7.org/fhir/R4/datatypes.html. Plain functions over JSON dicts; nothing here
knows about pages or requests.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

JsonDict = dict[str, Any]


def concept_text(concept: Any, fallback: str = "") -> str:
    """What a person reads for a CodeableConcept: its text, else its first display or code."""
    if not isinstance(concept, dict):
        return fallback
    if isinstance(concept.get("text"), str) and concept["text"]:
        return str(concept["text"])
    for coding in concept.get("coding") or []:
        if isinstance(coding, dict) and (coding.get("display") or coding.get("code")):
            return str(coding.get("display") or coding.get("code"))
    return fallback


def first_concept_text(concepts: Any, fallback: str = "") -> str:
    """The text of the first CodeableConcept in a list that has one."""
    for concept in concepts if isinstance(concepts, list) else []:
        text = concept_text(concept)
        if text:
            return text
    return fallback


def codes(concept: Any) -> set[tuple[str, str]]:
    """The (system, code) pairs of a CodeableConcept."""
    if not isinstance(concept, dict):
        return set()
    return {
        (str(coding.get("system", "")), str(coding["code"]))
        for coding in concept.get("coding") or []
        if isinstance(coding, dict) and coding.get("code")
    }


def codes_of_all(concepts: Any) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for concept in concepts if isinstance(concepts, list) else []:
        found |= codes(concept)
    return found


def first_code(concept: Any) -> str | None:
    """The first coding's code (what a test is keyed by in URLs)."""
    for system_code in sorted(codes(concept)):
        return system_code[1]
    return None


def reference_key(reference: Any) -> str | None:
    """`Type/id` of a literal Reference (relative or absolute, version dropped)."""
    if not isinstance(reference, dict) or not isinstance(reference.get("reference"), str):
        return None
    parts = reference["reference"].split("/_history/")[0].split("/")
    if len(parts) < 2 or "?" in parts[-1] or parts[-1].startswith("urn:"):
        return None
    return f"{parts[-2]}/{parts[-1]}"


def reference_display(reference: Any) -> str:
    if isinstance(reference, dict) and isinstance(reference.get("display"), str):
        return str(reference["display"])
    return ""


def display_name(resource: Any) -> str:
    """What a person or an organisation is called: an Organization's name, else the
    first HumanName (its text, or given names and family), else ""."""
    if not isinstance(resource, dict):
        return ""
    name = resource.get("name")
    if isinstance(name, str):
        return name
    for human in name if isinstance(name, list) else []:
        if not isinstance(human, dict):
            continue
        if isinstance(human.get("text"), str) and human["text"]:
            return str(human["text"])
        parts = [*(human.get("given") or []), human.get("family") or ""]
        text = " ".join(str(part) for part in parts if part)
        if text:
            return text
    return ""


def parse_time(value: Any) -> datetime | None:
    """A FHIR date, dateTime or instant as an aware datetime (dates at midnight UTC).

    Partial dates (`2015`, `2015-03`) take their first day: what a timeline sorts by.
    """
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    try:
        if len(text) == 4:
            return datetime(int(text), 1, 1, tzinfo=UTC)
        if len(text) == 7:
            return datetime(int(text[:4]), int(text[5:7]), 1, tzinfo=UTC)
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def first_time(resource: JsonDict, elements: Iterable[str]) -> datetime | None:
    """The first of `elements` that holds a time (a Period counts by its start)."""
    for element in elements:
        value = resource.get(element)
        if isinstance(value, dict):
            value = value.get("start") or value.get("end")
        moment = parse_time(value)
        if moment is not None:
            return moment
    return None


def period(value: Any) -> tuple[datetime | None, datetime | None]:
    if not isinstance(value, dict):
        return None, None
    return parse_time(value.get("start")), parse_time(value.get("end"))


def quantity_value(quantity: Any) -> float | None:
    if isinstance(quantity, dict) and isinstance(quantity.get("value"), int | float):
        return float(quantity["value"])
    return None


def quantity_unit(quantity: Any) -> str:
    if not isinstance(quantity, dict):
        return ""
    return str(quantity.get("unit") or quantity.get("code") or "")


def source_key(url: str | None) -> str:
    """`Organization/<id>` when a `meta.source` URL names one of ours, else the URL
    itself ("" without one)."""
    if not url:
        return ""
    marker = url.rfind("/Organization/")
    if marker < 0:
        return url
    return "Organization/" + url[marker + len("/Organization/") :].split("/")[0]
