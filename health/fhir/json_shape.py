"""The JSON representation rules the models do not check: https://hl7.org/fhir/R4/json.html

- `null` only inside the arrays of a repeating primitive and its `_x` twin;
- no empty objects or arrays;
- booleans and numbers as JSON booleans and numbers, everything else as strings.

fhir.resources (pydantic in lax mode) accepts `"active": "true"` and `"valueInteger":
"5"` and would let us store them as strings, since we keep the JSON as received.
The element kinds come from the models' field annotations, read once per model.
"""

from __future__ import annotations

import datetime
import types
import typing
from decimal import Decimal
from functools import cache
from typing import Any

from health.fhir.errors import Issue

_UNION_TYPES = (typing.Union, types.UnionType)
_STRING_TYPES = (str, bytes, datetime.date, datetime.datetime, datetime.time)

# (JSON kind or None, element model or None) per JSON key of a model.
Shape = dict[str, tuple[str | None, Any]]


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
        kind, child = shape.get(key, (None, None))
        if type(value) is list:
            if not value:
                issues.append(Issue("structure", f"'{key}' may not be an empty array", (where,)))
                continue
            for index, item in enumerate(value):
                if item is not None:
                    _check_value(item, kind, child, key, f"{where}[{index}]", issues, model_of)
        else:
            _check_value(value, kind, child, key, where, issues, model_of)


def _check_value(
    value: Any,
    kind: str | None,
    child: Any,
    key: str,
    where: str,
    issues: list[Issue],
    model_of: typing.Callable[[str], Any],
) -> None:
    if kind is not None and not _is_kind(value, kind):
        issues.append(
            Issue("value", f"'{key}' must be a JSON {kind}, not {_json_kind(value)}", (where,))
        )
        return
    if type(value) is dict:
        if key == "contained" or key == "resource":
            # A resource inside a resource: its own type decides its shape.
            contained_type = value.get("resourceType")
            child = (
                _safe_model(model_of, contained_type) if isinstance(contained_type, str) else None
            )
        _check_object(value, child, where, issues, model_of)
    elif type(value) is list:
        _check_object({str(i): v for i, v in enumerate(value)}, None, where, issues, model_of)


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
        shape[field.alias or name] = _classify(field.annotation)
    return shape


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
