"""The JSON representation rules checked beside the models."""

from __future__ import annotations

from typing import Any

import pytest

from health import PROJECT_ROOT
from health.fhir.json_shape import json_issues
from health.fhir.resource_types import ResourceTypes

types = ResourceTypes(PROJECT_ROOT / "fhir")


def issues_of(resource: dict[str, Any]) -> list[tuple[str, str]]:
    resource_type = resource["resourceType"]
    found = json_issues(resource, types.model(resource_type), resource_type, types.model)
    return [(issue.code, issue.expression[0]) for issue in found]


def test_numbers_and_booleans_must_not_be_quoted() -> None:
    assert issues_of({"resourceType": "Patient", "active": "true"}) == [("value", "Patient.active")]
    assert issues_of({"resourceType": "Patient", "multipleBirthInteger": 2.5}) == [
        ("value", "Patient.multipleBirthInteger")
    ]


def test_a_decimal_may_be_written_as_an_integer() -> None:
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "weight"},
        "valueQuantity": {"value": 70, "unit": "kg"},
    }
    assert issues_of(observation) == []


def test_strings_must_be_strings() -> None:
    assert issues_of({"resourceType": "Patient", "birthDate": 19700101}) == [
        ("value", "Patient.birthDate")
    ]


def test_null_is_allowed_only_inside_arrays() -> None:
    # https://hl7.org/fhir/R4/json.html#primitive: a repeating primitive and its _x
    # twin stay aligned with nulls.
    aligned = {
        "resourceType": "Patient",
        "name": [{"given": ["Ib", None], "_given": [None, {"id": "g2"}]}],
    }
    assert issues_of(aligned) == []
    assert issues_of({"resourceType": "Patient", "gender": None}) == [
        ("structure", "Patient.gender")
    ]


def test_contained_resources_are_checked_by_their_own_type() -> None:
    patient = {
        "resourceType": "Patient",
        "contained": [{"resourceType": "Organization", "id": "o", "active": "yes"}],
    }
    assert issues_of(patient) == [("value", "Patient.contained[0].active")]


@pytest.mark.parametrize(
    ("inner", "location"),
    [
        ({"id": "a"}, "Patient.contained[0]"),
        ({"resourceType": 5, "id": "a"}, "Patient.contained[0].resourceType"),
        ({"resourceType": "Bogus", "id": "a"}, "Patient.contained[0].resourceType"),
        ({"resourceType": "observation", "id": "a"}, "Patient.contained[0].resourceType"),
        ({"resourceType": "HumanName", "family": "x"}, "Patient.contained[0].resourceType"),
        ({"resourceType": "DomainResource", "id": "a"}, "Patient.contained[0].resourceType"),
    ],
)
def test_a_resource_inside_a_resource_must_name_a_concrete_resource_type(
    inner: dict[str, Any], location: str
) -> None:
    assert issues_of({"resourceType": "Patient", "contained": [inner]}) == [("structure", location)]


def test_a_bundle_entry_resource_is_checked_by_its_own_type() -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"resource": {"resourceType": "Patient", "active": True}},
            {"resource": {"resourceType": "Bogus"}},
        ],
    }
    assert issues_of(bundle) == [("structure", "Bundle.entry[1].resource.resourceType")]


def test_empty_objects_and_arrays_are_refused() -> None:
    assert issues_of({"resourceType": "Patient", "name": [], "maritalStatus": {}}) == [
        ("structure", "Patient.name"),
        ("structure", "Patient.maritalStatus"),
    ]


def test_codes_of_a_fully_listed_required_binding_are_checked() -> None:
    assert issues_of({"resourceType": "Patient", "gender": "robot"}) == [
        ("code-invalid", "Patient.gender")
    ]
    assert issues_of({"resourceType": "Patient", "gender": "female"}) == []


def test_an_incomplete_code_list_is_not_held_against_valid_codes() -> None:
    # Observation.status is "registered | preliminary | final | amended +": the model
    # lists only some codes, so "cancelled" (a real code) must not be refused.
    observation = {"resourceType": "Observation", "status": "cancelled", "code": {"text": "x"}}
    assert issues_of(observation) == []


# https://hl7.org/fhir/R4/datatypes.html#string: no character below U+0020 but tab, line
# feed and carriage return.
CONTROL_CHARACTERS = [chr(c) for c in range(0x20) if c not in (0x09, 0x0A, 0x0D)]


@pytest.mark.parametrize("character", CONTROL_CHARACTERS, ids=lambda c: f"U+{ord(c):04X}")
def test_a_control_character_in_any_string_is_refused_where_it_is(character: str) -> None:
    patient = {
        "resourceType": "Patient",
        "name": [{"family": f"Jen{character}sen", "given": ["Ib"]}],
        "text": {"status": "generated", "div": f"<div>{character}</div>"},
    }

    assert issues_of(patient) == [
        ("value", "Patient.name[0].family"),
        ("value", "Patient.text.div"),
    ]
    found = json_issues(patient, types.model("Patient"), "Patient", types.model)
    assert f"U+{ord(character):04X}" in found[0].diagnostics


def test_tab_line_breaks_and_other_unprintable_characters_are_allowed() -> None:
    # Allowed: tab, line feed, carriage return; and what Python calls unprintable but
    # FHIR allows (a no-break space, a line separator, DEL).
    text = "Line one\r\n\tline two\u00a0\u2028\u007f"
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": text},
        "valueString": text,
    }

    assert issues_of(observation) == []
