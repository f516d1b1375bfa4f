"""The patient a search is confined to, when its conditions imply one.

A search such as `Observation?patient=123` or `Observation?subject=Patient/123` can
only match resources stored in patient 123's compartment (the owner is decided at
write time from the same element, health/fhir/compartment.py). Knowing that, the SQL
narrows every index lookup to that patient's rows instead of reading the rows of every
patient (docs/BENCHMARKS.md, "Search").
"""

from __future__ import annotations

import dataclasses
import re

from health.fhir.compartment import PatientCompartment
from health.fhir.search.definitions import SearchDefinitions
from health.fhir.search.params import Condition, SearchRequest
from health.fhir.search.values import ReferenceValue

_WHERE_SUFFIX = re.compile(r"\.where\(resolve\(\) is Patient\)$")


def confine_to_patient(
    request: SearchRequest, definitions: SearchDefinitions, compartment: PatientCompartment
) -> SearchRequest:
    """The request, with `patient` set when one condition pins the compartment owner."""
    owner = compartment.owner_path(request.resource_type)
    # A Patient is its own compartment's owner; Patient.link names other patients.
    if owner is None or request.resource_type == "Patient":
        return request
    owner_expression = f"{request.resource_type}.{owner}"
    for condition in request.conditions:
        if not isinstance(condition, Condition) or condition.type != "reference":
            continue
        parameter = definitions.get(request.resource_type, condition.param)
        if parameter is None:
            continue
        if _WHERE_SUFFIX.sub("", parameter.expression) != owner_expression:
            continue
        patient_id = _pinned_patient(condition, parameter.targets)
        if patient_id is not None:
            return dataclasses.replace(request, patient=patient_id)
    return request


def _pinned_patient(condition: Condition, targets: tuple[str, ...]) -> str | None:
    """The patient id of `param=Patient/x` (one value, no chain, no other modifier)."""
    if condition.chain is not None or condition.modifier not in (None, "Patient"):
        return None
    if len(condition.values) != 1:
        return None
    value = condition.values[0]
    if not isinstance(value, ReferenceValue) or value.id is None or value.url is not None:
        return None
    if value.resource_type is not None:
        return value.id if value.resource_type == "Patient" else None
    # A bare id: a Patient when the modifier or the parameter allows nothing else.
    allowed = condition.target_types or targets
    return value.id if allowed == ("Patient",) else None
