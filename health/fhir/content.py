"""Bodies in and out: JSON parsing with limits, format negotiation, output shaping.

https://hl7.org/fhir/R4/http.html#mime-type and #parameters (_format, _pretty,
_summary, _elements).
"""

from __future__ import annotations

from typing import Any

import orjson

from health.fhir.errors import (
    invalid,
    not_acceptable,
    structure,
    unsupported_media_type,
)
from health.fhir.resource_types import ResourceTypes

FHIR_JSON = "application/fhir+json"
JSON_PATCH = "application/json-patch+json"
_JSON_TYPES = {FHIR_JSON, "application/json", "application/json+fhir", "text/json"}
_XML_TYPES = {"application/fhir+xml", "application/xml", "text/xml", "application/xml+fhir"}
_JSON_FORMATS = _JSON_TYPES | {"json"}
_XML_FORMATS = _XML_TYPES | {"xml"}


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def check_request_content_type(content_type: str | None, *, allow_patch: bool = False) -> None:
    """415 unless the body is JSON (a missing Content-Type is read as JSON)."""
    kind = media_type(content_type)
    if not kind or kind in _JSON_TYPES or (allow_patch and kind == JSON_PATCH):
        return
    if kind in _XML_TYPES:
        raise unsupported_media_type(
            f"Content-Type {kind} is not supported: this server speaks FHIR JSON only ({FHIR_JSON})"
        )
    raise unsupported_media_type(f"Content-Type {kind} is not supported; send {FHIR_JSON}")


def check_acceptable(accept: str | None, format_param: str | None) -> None:
    """406 when the client will only take a format this server cannot produce.

    `_format` overrides Accept: https://hl7.org/fhir/R4/http.html#parameters
    """
    if format_param:
        requested = format_param.strip().lower().split(";", 1)[0]
        if requested in _JSON_FORMATS:
            return
        if requested in _XML_FORMATS:
            raise not_acceptable(f"_format={format_param}: this server returns JSON only")
        raise not_acceptable(f"_format={format_param} is not a format this server returns")
    if not accept:
        return
    offered = [media_type(part) for part in accept.split(",")]
    if any(
        kind in _JSON_TYPES or kind in ("*/*", "application/*", "") or kind.endswith("+json")
        for kind in offered
    ):
        return
    raise not_acceptable(f"Accept: {accept} does not include JSON ({FHIR_JSON})")


def parse_json(
    raw: bytes, *, max_depth: int, where: str = "", subject: str = "The request body"
) -> Any:
    """Parse a request body (or what `subject` names: a file, a line of one): UTF-8
    JSON, nested at most `max_depth` levels."""
    if not raw or raw.isspace():  # not strip(): that copies the whole body
        raise structure(f"{subject} is empty", where or ())
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as bad_bytes:
            raise structure(
                f"{subject} is not valid UTF-8 (byte {bad_bytes.start})", where or ()
            ) from None
        raise structure(f"{subject} is not valid JSON: {error}", where or ()) from None
    try:
        _check_depth(value, max_depth)
    except _TooDeep:
        raise structure(
            f"{subject} is nested more than {max_depth} levels deep", where or ()
        ) from None
    return value


class _TooDeep(Exception):
    """JSON nested deeper than the limit `_check_depth` was given."""


def _check_depth(value: Any, max_depth: int) -> None:
    """_TooDeep when containers are nested deeper than `max_depth` (the top value is
    level 1).

    Only containers are visited (most leaves are strings), depth first: three times as
    fast as a walk level by level over the Synthea Bundles (docs/BENCHMARKS.md, "The
    nesting check"). The recursion stops at `max_depth`, which the settings keep far
    inside Python's recursion limit."""
    if type(value) is dict or type(value) is list:
        _check_level(value, 1, max_depth)


def _check_level(node: dict[str, Any] | list[Any], depth: int, max_depth: int) -> None:
    if depth > max_depth:
        raise _TooDeep
    for child in node.values() if type(node) is dict else node:
        if type(child) is dict or type(child) is list:
            _check_level(child, depth + 1, max_depth)


def stored(body: bytes | None) -> orjson.Fragment:
    """A stored resource's JSON, to go into a response as it is.

    A Bundle of stored resources (a searchset, `$everything`, a history, a
    transaction's answer) carries each one's bytes without parsing them and writing
    them out again, which was about a third of a `$everything` page of 100 in-process
    (docs/BENCHMARKS.md, "Stored resources sent as stored"). Stored bodies are compact
    JSON that orjson wrote (health/fhir/versions.py `stamp`, Repository.shown).
    """
    return orjson.Fragment(body or b"{}")


def dumps(value: Any, *, pretty: bool = False) -> bytes:
    compact = orjson.dumps(value)
    if not pretty:
        return compact
    # orjson copies a Fragment as it is: indent the stored resources in it too.
    return orjson.dumps(orjson.loads(compact), option=orjson.OPT_INDENT_2)


def is_pretty(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


SUMMARY_MODES = ("true", "false", "text", "data", "count")
_ALWAYS_KEPT = ("resourceType", "id", "meta")


def summary_mode(value: str | None, *, allow_count: bool = False) -> str | None:
    if value is None:
        return None
    mode = value.strip().lower()
    if mode not in SUMMARY_MODES or (mode == "count" and not allow_count):
        raise invalid(f"_summary={value} is not supported here", "_summary")
    return None if mode == "false" else mode


def elements_list(value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        raise invalid("_elements needs at least one element name", "_elements")
    return names


def shape(
    resource: dict[str, Any],
    types: ResourceTypes,
    *,
    summary: str | None,
    elements: list[str] | None,
) -> dict[str, Any]:
    """Apply _summary or _elements to a resource; the subset is tagged SUBSETTED.

    https://hl7.org/fhir/R4/search.html#summary and #elements. Elements are chosen at
    the top level, as the spec requires of servers at a minimum.
    """
    if summary is None and elements is None:
        return resource
    resource_type = resource["resourceType"]
    if summary == "text":
        keep = {"text", *_mandatory(resource_type, types)}
    elif summary == "data":
        keep = set(resource) - {"text"}
    elif summary == "true":
        keep = _summary_elements(resource_type, types)
    else:
        keep = set(elements or ()) | _mandatory(resource_type, types)
    shaped = {
        key: value
        for key, value in resource.items()
        if key in _ALWAYS_KEPT or key in keep or (key.startswith("_") and key[1:] in keep)
    }
    # Every subset is tagged, _summary=data too: without its narrative it must not be
    # taken for (and PUT back as) the whole resource.
    meta = dict(shaped.get("meta") or {})
    meta["tag"] = [*meta.get("tag", []), _SUBSETTED]
    shaped["meta"] = meta
    return shaped


_SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
    "display": "subsetted",
}


def _summary_elements(resource_type: str, types: ResourceTypes) -> set[str]:
    fields = types.model(resource_type).model_fields
    return {
        field.alias or name
        for name, field in fields.items()
        if isinstance(field.json_schema_extra, dict)
        and field.json_schema_extra.get("summary_element_property")
    }


def _mandatory(resource_type: str, types: ResourceTypes) -> set[str]:
    fields = types.model(resource_type).model_fields
    return {
        field.alias or name
        for name, field in fields.items()
        # Required complex elements (Observation.code) are plain required fields; required
        # primitives (Observation.status) carry element_required instead.
        if field.is_required()
        or (
            isinstance(field.json_schema_extra, dict)
            and field.json_schema_extra.get("element_required")
        )
    }
