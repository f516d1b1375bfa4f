"""Which source reported which part of a citizen's one Patient, and what a source sees of it.

Every hospital and GP that pushes a citizen merges its Patient into the same resource
(health/ingest/merge.py). Parts of it say where the citizen was treated: a hospital's
record number, the GP named as `generalPractitioner`, the narrative a source wrote.
Another source must not learn those from reading the Patient back: that a citizen is
known to a psychiatric ward is itself health data. So each such value carries the
sources that reported it (an extension naming their Organization), and a source is
shown only the values it reported itself. The citizen, their proxies and the
clinicians their consent lets look see the whole Patient.

The demographics every provider gets from the national register anyway (name, birth
date, gender, address, telecom) are not attributed: the newest report of them stands.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

# https://hl7.org/fhir/R4/extensibility.html: a logical URI, as urn:health:fact is.
REPORTED_BY = "urn:health:reported-by"

# The Patient's elements whose values say who treats the citizen. Each value is an
# Element (Identifier, Reference, BackboneElement, Narrative), so it can carry the
# extension. Top-level extensions are left out: complex ones (US Core race) read their
# nested extensions as their own parts.
ATTRIBUTED = (
    "identifier",
    "generalPractitioner",
    "managingOrganization",
    "contact",
    "link",
    "text",
)


def reporters(value: dict[str, Any]) -> list[str]:
    """The sources (`Organization/x`) that reported `value`, in the order they did."""
    return [
        str(e["valueReference"].get("reference"))
        for e in value.get("extension") or []
        if _is_reporter(e) and isinstance(e.get("valueReference"), dict)
    ]


def unattributed(value: dict[str, Any]) -> dict[str, Any]:
    """`value` without its reporters: what two reports of the same value share."""
    extensions = [e for e in value.get("extension") or [] if not _is_reporter(e)]
    plain = {k: v for k, v in value.items() if k != "extension"}
    if extensions:
        plain["extension"] = extensions
    return plain


def attributed(value: dict[str, Any], sources: Iterable[str]) -> dict[str, Any]:
    """`value` reported by `sources` (and by no one else, whatever it claimed)."""
    plain = unattributed(value)
    tags = [_reporter(s) for s in dict.fromkeys(sources)]
    if not tags:
        return plain
    return {**plain, "extension": [*plain.get("extension", []), *tags]}


def report(patient: dict[str, Any], source: str) -> dict[str, Any]:
    """A pushed Patient with every attributed value credited to `source` alone."""
    reported = dict(patient)
    for element in ATTRIBUTED:
        values = reported.get(element)
        if isinstance(values, list):
            reported[element] = [
                attributed(v, [source]) if isinstance(v, dict) else v for v in values
            ]
        elif isinstance(values, dict):
            reported[element] = attributed(values, [source])
    return reported


def merged_identifiers(
    current: list[dict[str, Any]], pushed: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Every identifier either side holds, once, crediting every source that reported it."""
    merged: dict[str, tuple[dict[str, Any], list[str]]] = {}
    for identifier in (*current, *pushed):
        if not isinstance(identifier, dict):
            continue
        plain = unattributed(identifier)
        key = _key(plain)
        known = merged.get(key)
        if known is None:
            merged[key] = (plain, reporters(identifier))
        else:
            known[1].extend(s for s in reporters(identifier) if s not in known[1])
    return [attributed(plain, sources) for plain, sources in merged.values()]


def shown_to_source(patient: dict[str, Any], source: str) -> dict[str, Any]:
    """What `source` (`Organization/x`) is shown of a citizen's Patient: the attributed
    values it reported itself, without the reporters, and meta.source only if it is
    the source's own. Values nobody is credited with (written before attribution, or
    by the citizen) are not shown to it either."""
    shown = dict(patient)
    for element in ATTRIBUTED:
        values = shown.get(element)
        if isinstance(values, list):
            kept = [unattributed(v) for v in values if _reported(v, source)]
            if kept:
                shown[element] = kept
            else:
                shown.pop(element)
        elif isinstance(values, dict):
            if _reported(values, source):
                shown[element] = unattributed(values)
            else:
                shown.pop(element)
    meta = shown.get("meta")
    # meta.source is the source's URL on our base (health.ingest.push.Source.uri).
    if isinstance(meta, dict) and not str(meta.get("source", "")).endswith(f"/{source}"):
        shown["meta"] = {k: v for k, v in meta.items() if k != "source"}
    return shown


def _is_reporter(extension: Any) -> bool:
    return isinstance(extension, dict) and extension.get("url") == REPORTED_BY


def _reporter(source: str) -> dict[str, Any]:
    return {"url": REPORTED_BY, "valueReference": {"reference": source}}


def _reported(value: Any, source: str) -> bool:
    return isinstance(value, dict) and source in reporters(value)


def _key(identifier: dict[str, Any]) -> str:
    # Canonical JSON: the same identifier sent with its keys in another order is one.
    return orjson.dumps(identifier, option=orjson.OPT_SORT_KEYS).decode()
