"""health.fhir.validation: resource type checks and FHIRPath-located issues, without HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from health import PROJECT_ROOT
from health.fhir.errors import FhirError
from health.fhir.resource_types import ResourceTypes
from health.fhir.validation import (
    ID_PATTERN,
    check_known_type,
    resource_type_of,
    validate_resource,
)


@pytest.fixture(scope="module")
def types() -> ResourceTypes:
    return ResourceTypes(PROJECT_ROOT / "fhir")


def problems(resource: dict[str, Any], types: ResourceTypes) -> list[tuple[str, str]]:
    """(code, expression) of each issue validate_resource raises."""
    with pytest.raises(FhirError) as caught:
        validate_resource(resource, types)
    assert caught.value.status == 400
    return [(issue.code, e) for issue in caught.value.issues for e in issue.expression]


@pytest.mark.parametrize(
    "valid_id", ["a", "123", "Patient-1.v2", "x" * 64, "5b1f6a7e-0c57-4f55-9a43-6d2b2f1d0a01"]
)
def test_valid_ids(valid_id: str) -> None:
    assert ID_PATTERN.fullmatch(valid_id)


@pytest.mark.parametrize("invalid_id", ["", "x" * 65, "a_b", "a b", "a/b", "æøå", "a:b"])
def test_invalid_ids(invalid_id: str) -> None:
    assert not ID_PATTERN.fullmatch(invalid_id)


def test_resource_type_of_a_resource() -> None:
    assert resource_type_of({"resourceType": "Patient"}) == "Patient"


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ([], "JSON object"),
        ("Patient", "JSON object"),
        ({}, "no resourceType"),
        ({"resourceType": ""}, "no resourceType"),
        ({"resourceType": ["Patient"]}, "no resourceType"),
    ],
)
def test_resource_type_of_something_else_is_400(value: Any, said: str) -> None:
    with pytest.raises(FhirError) as caught:
        resource_type_of(value, "Bundle.entry[0].resource")

    assert caught.value.status == 400
    assert said in str(caught.value)
    assert caught.value.issues[0].expression == ("Bundle.entry[0].resource",)


def test_known_types_pass(types: ResourceTypes) -> None:
    for name in ("Patient", "Observation", "Bundle", "Consent", "AuditEvent"):
        check_known_type(name, types)


def test_an_unknown_type_in_the_url_is_404(types: ResourceTypes) -> None:
    with pytest.raises(FhirError) as caught:
        check_known_type("Spaceship", types)

    assert caught.value.status == 404
    assert "Spaceship" in str(caught.value)


def test_an_unknown_type_inside_a_body_is_400_and_located(types: ResourceTypes) -> None:
    with pytest.raises(FhirError) as caught:
        check_known_type("Spaceship", types, where="Bundle.entry[2].resource")

    assert caught.value.status == 400
    assert caught.value.issues[0].expression == ("Bundle.entry[2].resource",)


def test_an_excluded_type_says_why(types: ResourceTypes) -> None:
    with pytest.raises(FhirError) as caught:
        check_known_type("Parameters", types)

    assert "not served" in str(caught.value)
    assert "operation" in str(caught.value)


def test_a_valid_resource_passes(types: ResourceTypes) -> None:
    validate_resource(
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
            "subject": {"reference": "Patient/p1"},
            "valueQuantity": {"value": 70.5, "unit": "kg"},
            "_status": {"extension": [{"url": "http://example.org/x", "valueBoolean": True}]},
        },
        types,
    )


def test_a_null_inside_a_repeating_primitive_with_its_extension_twin_passes(
    types: ResourceTypes,
) -> None:
    # https://hl7.org/fhir/R4/json.html#primitive: null keeps the two arrays aligned.
    validate_resource(
        {
            "resourceType": "Patient",
            "name": [
                {
                    "given": ["Ann", None],
                    "_given": [
                        None,
                        {"extension": [{"url": "http://example.org/x", "valueString": "y"}]},
                    ],
                }
            ],
        },
        types,
    )


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        (
            {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "foo": 1},
            ("structure", "Observation.foo"),
        ),
        (
            {"resourceType": "Observation", "status": 1, "code": {"text": "x"}},
            ("value", "Observation.status"),
        ),
        (
            {"resourceType": "Observation", "code": {"text": "x"}},
            ("required", "Observation.status"),
        ),
        ({"resourceType": "Observation", "status": "final"}, ("required", "Observation.code")),
        (
            {"resourceType": "Patient", "contact": [{"name": {"family": 1}}]},
            ("value", "Patient.contact[0].name.family"),
        ),
        (
            {"resourceType": "Patient", "_gender": {"extension": [{"url": 1}]}},
            ("value", "Patient._gender.extension[0].url"),
        ),
        (
            {"resourceType": "Patient", "deceasedBoolean": True, "deceasedDateTime": "2020"},
            ("value", "Patient"),
        ),
        ({"resourceType": "Patient", "gender": None}, ("structure", "Patient.gender")),
        ({"resourceType": "Patient", "identifier": []}, ("structure", "Patient.identifier")),
        ({"resourceType": "Patient", "maritalStatus": {}}, ("structure", "Patient.maritalStatus")),
        (
            {"resourceType": "Patient", "name": [{"given": []}]},
            ("structure", "Patient.name[0].given"),
        ),
    ],
)
def test_problems_are_located_with_fhirpath(
    types: ResourceTypes, resource: dict[str, Any], expected: tuple[str, str]
) -> None:
    found = problems(resource, types)

    code, where = expected
    assert any(c == code and e.startswith(where) for c, e in found), found


def test_every_problem_is_listed(types: ResourceTypes) -> None:
    found = problems(
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": 1},
            "issued": "soon",
            "colour": "red",
        },
        types,
    )

    assert {e for _, e in found} >= {
        "Observation.code.text",
        "Observation.issued",
        "Observation.colour",
    }


def test_an_unknown_type_in_a_resource_is_400(types: ResourceTypes) -> None:
    with pytest.raises(FhirError) as caught:
        validate_resource({"resourceType": "Spaceship"}, types)

    assert caught.value.status == 400
