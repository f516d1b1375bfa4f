"""Validation of resources with fhir.resources' R4B models, one resource at a time.

Each resource is validated on its own (a Bundle entry by entry), which is about twice
as fast as validating a Bundle as one model and lets every problem be located in the
Bundle. Errors become issues with FHIRPath-like locations (`Observation.code.text`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from health.fhir.errors import FhirError, Issue, invalid, structure
from health.fhir.json_shape import json_issues
from health.fhir.resource_types import ResourceTypes

# https://hl7.org/fhir/R4/datatypes.html#id
ID_PATTERN = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_PYDANTIC_CONTEXT_SEGMENT = re.compile(r"^[a-z-]+\[.*\]$")


def resource_type_of(resource: Any, where: str = "") -> str:
    """The resourceType of a parsed JSON value, or a 400 saying why there is none."""
    if not isinstance(resource, dict):
        raise structure("A resource must be a JSON object", where or ())
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str) or not resource_type:
        raise structure("The resource has no resourceType", where or ())
    return resource_type


def check_known_type(resource_type: str, types: ResourceTypes, where: str = "") -> None:
    if resource_type in types:
        return
    if resource_type in types.excluded:
        reason = types.excluded[resource_type]
        raise FhirError(
            [
                Issue(
                    "not-supported",
                    f"Resource type {resource_type} is not served: {reason}",
                    (where,) if where else (),
                )
            ],
            status=400 if where else 404,
        )
    raise FhirError(
        [
            Issue(
                "not-supported",
                f"Unknown resource type '{resource_type}'",
                (where,) if where else (),
            )
        ],
        status=400 if where else 404,
    )


@dataclass(frozen=True)
class Checked:
    """A resource that passed validation as a `resource_type`.

    The interactions take these, not raw JSON, so that nothing unvalidated can be
    stored; `check` makes them, before a database transaction is opened, so that
    validation (most of the cost of a write) never runs under a write lock.
    """

    resource_type: str
    resource: dict[str, Any]

    def with_id(self, resource_id: str) -> Checked:
        """The same resource with the server's id (an id is valid by construction)."""
        return Checked(self.resource_type, {**self.resource, "id": resource_id})


def check(resource: Any, resource_type: str, types: ResourceTypes, where: str = "") -> Checked:
    """Validate `resource` as the `resource_type` a request addresses."""
    actual = resource_type_of(resource, where)
    check_known_type(resource_type, types, where)
    if actual != resource_type:
        raise invalid(
            f"The resource is a {actual} but the request is for {resource_type}",
            f"{where}.resourceType" if where else f"{actual}.resourceType",
        )
    try:
        validate_resource(resource, types)
    except FhirError as error:
        raise error.located(where) if where else error from None
    return Checked(resource_type, resource)


def validate_resource(resource: dict[str, Any], types: ResourceTypes) -> None:
    """Raise a 400 listing every structural problem of `resource`, or return quietly."""
    resource_type = resource_type_of(resource)
    check_known_type(resource_type, types, where=resource_type)
    model = types.model(resource_type)
    issues = json_issues(resource, model, resource_type, types.model)
    try:
        model.model_validate(resource)
    except ValidationError as error:
        located = {expression for issue in issues for expression in issue.expression}
        issues.extend(
            issue
            for issue in (_issue(resource_type, e) for e in error.errors())
            if not set(issue.expression) & located
        )
    except (ValueError, TypeError, KeyError) as error:
        # Some model validators raise plain errors outside pydantic's collection, and
        # fhir_core looks a resource inside a resource up by its type (a KeyError for an
        # unknown one). The shape check has then already located the cause.
        if not issues:
            if isinstance(error, KeyError):
                raise
            issues.append(Issue("invalid", f"Invalid {resource_type}: {error}", (resource_type,)))
    if issues:
        raise FhirError(issues, status=400)


def _issue(resource_type: str, error: Any) -> Issue:
    location = _fhirpath(resource_type, error.get("loc", ()))
    message = error.get("msg", "invalid value")
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        return Issue("structure", f"Unknown element '{location.rsplit('.', 1)[-1]}'", (location,))
    # fhir.resources reports a missing required primitive (Observation.status) as a
    # value error: "Value for the field 'status' is required."
    if kind == "missing" or message.endswith("is required."):
        return Issue("required", f"Missing required element: {message}", (location,))
    return Issue("value", message, (location,))


def _fhirpath(resource_type: str, loc: tuple[Any, ...]) -> str:
    path = resource_type
    for segment in loc:
        if isinstance(segment, int):
            path += f"[{segment}]"
            continue
        name = str(segment)
        if _PYDANTIC_CONTEXT_SEGMENT.match(name) or name == "__root__":
            continue
        if name.endswith("__ext"):
            # fhir.resources names a primitive's extension element `x__ext`; JSON says `_x`.
            name = "_" + name[: -len("__ext")]
        path += f".{name}"
    return path
