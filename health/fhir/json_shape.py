"""The JSON representation rules the models do not check: https://hl7.org/fhir/R4/json.html

- `null` only inside the arrays of a repeating primitive and its `_x` twin;
- no empty objects or arrays;
- booleans and numbers as JSON booleans and numbers, everything else as strings;
- a code with a required binding is one of the codes of its value set, where the
  model lists them all (the spec's short form, e.g. `male | female | other | unknown`;
  a list ending in `+` is incomplete and is not checked);
- no string holds a character below U+0020 but tab, line feed and carriage return
  (https://hl7.org/fhir/R4/datatypes.html#string): XML, the other format every resource
  must survive, cannot write them, and PostgreSQL's text columns (the search index)
  cannot hold U+0000 (NUL).

fhir.resources (pydantic in lax mode) accepts `"active": "true"` and `"valueInteger":
"5"` and would let us store them as strings, since we keep the JSON as received.
The element kinds come from the models' field annotations, read once per model.
"""

from __future__ import annotations

import datetime
import re
import types
import typing
from decimal import Decimal
from functools import cache
from typing import Any

from health.fhir.errors import Issue
from health.fhir.resource_types import model_class

# U+0000: no FHIR value holds it (XML cannot write it), nor can PostgreSQL's text.
NUL = "\x00"
# The characters no FHIR string holds: those below U+0020 but tab, line feed and
# carriage return (https://hl7.org/fhir/R4/datatypes.html#string).
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")
_UNION_TYPES = (typing.Union, types.UnionType)
# Resource types no resource can be: https://hl7.org/fhir/R4/resource.html
_ABSTRACT_RESOURCES = frozenset({"Resource", "DomainResource"})
# The model of an element that holds a whole resource (contained, Bundle.entry.resource).
_RESOURCE = model_class("Resource")
_STRING_TYPES = (str, bytes, datetime.date, datetime.datetime, datetime.time)

# (JSON kind or None, element model or None, allowed codes or None) per JSON key.
Element = tuple[str | None, Any, frozenset[str] | None]
Shape = dict[str, Element]


def json_issues(
    resource: dict[str, Any], model: Any, resource_type: str, model_of: typing.Callable[[str], Any]
) -> list[Issue]:
    """Every breach of the JSON rules in `resource`, located (`Patient.active`)."""
    issues: list[Issue] = []
    _check_object(resource, model, resource_type, issues, model_of)
    return issues


def _check_object(
    node: dict[str, Any],
    model: Any,
    path: str,
    issues: list[Issue],
    model_of: typing.Callable[[str], Any],
) -> None:
    if not node:
        issues.append(Issue("structure", "An object may not be empty", (path,)))
        return
    shape = _shape(model) if model is not None else {}
    for key, value in node.items():
        where = f"{path}.{key}"
        if value is None:
            issues.append(Issue("structure", f"'{key}' may not be null", (where,)))
            continue
        element = shape.get(key, _UNKNOWN)
        if type(value) is list:
            if not value:
                issues.append(Issue("structure", f"'{key}' may not be an empty array", (where,)))
                continue
            for index, item in enumerate(value):
                if item is not None:
                    _check_value(item, element, key, f"{where}[{index}]", issues, model_of)
        else:
            _check_value(value, element, key, where, issues, model_of)


def _check_value(
    value: Any,
    element: Element,
    key: str,
    where: str,
    issues: list[Issue],
    model_of: typing.Callable[[str], Any],
) -> None:
    kind, child, codes = element
    # isprintable() first: a pass in C that nearly every string passes (it fails on the
    # allowed tab and line breaks too, and on other characters, which the search settles).
    if type(value) is str and not value.isprintable():
        control = _CONTROL.search(value)
        if control is not None:
            issues.append(Issue("value", _control_message(key, control.group()), (where,)))
            return
    if kind is not None and not _is_kind(value, kind):
        issues.append(
            Issue("value", f"'{key}' must be a JSON {kind}, not {_json_kind(value)}", (where,))
        )
        return
    if codes is not None and value not in codes:
        allowed = " | ".join(sorted(codes))
        issues.append(
            Issue(
                "code-invalid",
                f"'{value}' is not a code of the required value set of {key} ({allowed})",
                (where,),
            )
        )
        return
    if type(value) is dict:
        if child is _RESOURCE:
            # A resource inside a resource (contained, Bundle.entry.resource): its own
            # type decides its shape.
            child = _inner_resource_model(value, where, issues, model_of)
            if child is None:
                return
        _check_object(value, child, where, issues, model_of)
    elif type(value) is list:
        _check_object({str(i): v for i, v in enumerate(value)}, None, where, issues, model_of)


def _control_message(key: str, character: str) -> str:
    code_point = f"U+{ord(character):04X}"
    name = " (NUL)" if character == NUL else ""
    return (
        f"'{key}' holds the control character {code_point}{name}; a FHIR string holds no "
        "character below U+0020 but tab, line feed and carriage return"
    )


def _inner_resource_model(
    value: dict[str, Any], where: str, issues: list[Issue], model_of: typing.Callable[[str], Any]
) -> Any:
    """The model of a resource inside a resource, or None with the issue noted: it must
    name a concrete resource type (the models would fail on any other name)."""
    if "resourceType" not in value:
        issues.append(
            Issue("structure", "A resource inside a resource needs its resourceType", (where,))
        )
        return None
    resource_type = value["resourceType"]
    if type(resource_type) is not str:
        issues.append(
            Issue(
                "structure",
                "'resourceType' must be a JSON string naming a resource type",
                (f"{where}.resourceType",),
            )
        )
        return None
    model = _safe_model(model_of, resource_type)
    if model is None or not issubclass(model, _RESOURCE) or resource_type in _ABSTRACT_RESOURCES:
        issues.append(
            Issue(
                "structure",
                f"'{resource_type}' is not a FHIR resource type",
                (f"{where}.resourceType",),
            )
        )
        return None
    return model


def _safe_model(model_of: typing.Callable[[str], Any], name: str) -> Any:
    try:
        return model_of(name)
    except (ValueError, KeyError):
        return None


def _is_kind(value: Any, kind: str) -> bool:
    if kind == "boolean":
        return type(value) is bool
    if kind == "integer":
        return type(value) is int
    if kind == "decimal":
        return type(value) is int or type(value) is float
    return type(value) is str


def _json_kind(value: Any) -> str:
    if type(value) is bool:
        return "a boolean"
    if type(value) in (int, float):
        return "a number"
    if type(value) is str:
        return "a string"
    if type(value) is dict:
        return "an object"
    return "an array"


@cache
def _shape(model: Any) -> Shape:
    shape: Shape = {}
    for name, field in model.model_fields.items():
        kind, child = _classify(field.annotation)
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        listed = extra.get("enum_values")
        codes = frozenset(listed) if listed and "+" not in listed else None
        shape[field.alias or name] = (kind, child, codes)
    return shape


_UNKNOWN: Element = (None, None, None)


def _classify(annotation: Any) -> tuple[str | None, Any]:
    while True:
        origin = typing.get_origin(annotation)
        if origin in _UNION_TYPES:
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return None, None
            annotation = members[0]
        elif origin in (list, typing.List) or origin is typing.Annotated:  # noqa: UP006
            annotation = typing.get_args(annotation)[0]
        else:
            break
    if annotation is bool:
        return "boolean", None
    if annotation is int:
        return "integer", None
    if annotation is Decimal:
        return "decimal", None
    if annotation in _STRING_TYPES:
        return "string", None
    get_model = getattr(annotation, "get_model_klass", None)
    if get_model is not None:
        return None, get_model()
    return None, None
