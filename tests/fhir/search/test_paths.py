"""SearchParameter expressions compiled to functions over resource JSON."""

from __future__ import annotations

from typing import Any

import pytest

from health.fhir.search.paths import compile_expression, reference_type


def values(expression: str, resource: dict[str, Any]) -> list[Any]:
    compiled = compile_expression(expression, resource["resourceType"])
    assert compiled.native, f"{expression} should compile natively"
    return compiled(resource)


def types(expression: str, resource_type: str) -> list[str | None]:
    return [b.fhir_type for b in compile_expression(expression, resource_type).branches]


def test_a_dotted_path_flattens_lists_as_fhirpath_does() -> None:
    patient = {
        "resourceType": "Patient",
        "name": [{"given": ["Anna", "Marie"]}, {"family": "Berg"}, {"given": ["Ann"]}],
    }
    assert values("Patient.name.given", patient) == ["Anna", "Marie", "Ann"]
    assert values("Patient.name.family", patient) == ["Berg"]
    assert values("Patient.birthDate", patient) == []
    assert types("Patient.name", "Patient") == ["HumanName"]


def test_a_path_through_a_single_element_and_a_backbone_element() -> None:
    observation = {
        "resourceType": "Observation",
        "component": [
            {"code": {"text": "systolic"}, "valueQuantity": {"value": 120}},
            {"code": {"text": "diastolic"}, "valueQuantity": {"value": 80}},
        ],
    }
    assert values("Observation.component.code.text", observation) == ["systolic", "diastolic"]
    assert types("Observation.component.code", "Observation") == ["CodeableConcept"]


def test_as_operator_on_a_choice_element_reads_the_typed_key() -> None:
    observation = {"resourceType": "Observation", "valueQuantity": {"value": 5.4}}
    assert values("(Observation.value as Quantity)", observation) == [{"value": 5.4}]
    assert values("(Observation.value as CodeableConcept)", observation) == []
    assert types("(Observation.value as Quantity)", "Observation") == ["Quantity"]


def test_as_and_oftype_functions_with_complex_and_lowercase_types() -> None:
    condition = {
        "resourceType": "Condition",
        "onsetDateTime": "2020-02-03",
        "abatementPeriod": {"start": "2021-01-01"},
        "recordedDate": "2020-02-04",
    }
    assert values("Condition.onset.as(dateTime)", condition) == ["2020-02-03"]
    assert values("Condition.onset.as(Period)", condition) == []
    assert values("Condition.abatement.ofType(Period)", condition) == [{"start": "2021-01-01"}]
    assert types("Condition.onset.as(Age)", "Condition") == ["Age"]
    assert types("Condition.onset.as(dateTime)", "Condition") == ["dateTime"]


def test_a_choice_element_without_a_type_reads_every_typed_key() -> None:
    observation = {"resourceType": "Observation", "effectivePeriod": {"start": "2020"}}
    assert values("Observation.effective", observation) == [{"start": "2020"}]
    assert set(types("Observation.effective", "Observation")) == {
        "dateTime",
        "Period",
        "Timing",
        "instant",
    }


def test_a_path_continues_after_a_parenthesised_as() -> None:
    observation = {
        "resourceType": "Observation",
        "valueCodeableConcept": {"text": "Positive", "coding": [{"code": "10828004"}]},
    }
    assert values("(Observation.value as CodeableConcept).text", observation) == ["Positive"]
    assert types("(Observation.value as CodeableConcept).text", "Observation") == ["string"]


def test_where_resolve_is_keeps_references_to_that_type() -> None:
    observation = {
        "resourceType": "Observation",
        "subject": {"reference": "Patient/1"},
    }
    expression = "Observation.subject.where(resolve() is Patient)"
    assert values(expression, observation) == [{"reference": "Patient/1"}]
    for subject in (
        {"reference": "Group/1"},
        {"reference": "#contained-patient"},
        {"identifier": {"system": "urn:oid:1.2.208.176.1.2", "value": "0101011234"}},
        {"display": "Someone"},
    ):
        assert values(expression, {**observation, "subject": subject}) == []
    absolute = {"reference": "https://other.example/fhir/Patient/7/_history/2"}
    assert values(expression, {**observation, "subject": absolute}) == [absolute]


def test_where_resolve_is_on_a_repeating_reference() -> None:
    appointment = {
        "resourceType": "Appointment",
        "participant": [
            {"actor": {"reference": "Patient/p"}},
            {"actor": {"reference": "Practitioner/d"}},
            {"actor": {"reference": "Location/room-1"}},
        ],
    }
    expression = "Appointment.participant.actor.where(resolve() is Practitioner)"
    assert values(expression, appointment) == [{"reference": "Practitioner/d"}]


def test_where_with_an_equality_filters_on_an_element() -> None:
    patient = {
        "resourceType": "Patient",
        "telecom": [
            {"system": "phone", "value": "+45 12 34 56 78"},
            {"system": "email", "value": "anna@example.dk"},
        ],
    }
    assert values("Patient.telecom.where(system='email')", patient) == [
        {"system": "email", "value": "anna@example.dk"}
    ]


def test_a_union_concatenates_its_alternatives_in_order() -> None:
    document = {
        "resourceType": "DocumentReference",
        "masterIdentifier": {"value": "m"},
        "identifier": [{"value": "a"}, {"value": "b"}],
    }
    expression = "DocumentReference.masterIdentifier | DocumentReference.identifier"
    assert [i["value"] for i in values(expression, document)] == ["m", "a", "b"]


def test_resource_level_paths() -> None:
    patient = {
        "resourceType": "Patient",
        "id": "p1",
        "meta": {"tag": [{"system": "urn:s", "code": "t"}], "profile": ["urn:profile"]},
    }
    assert values("Resource.id", patient) == ["p1"]
    assert values("Resource.meta.tag", patient) == [{"system": "urn:s", "code": "t"}]
    assert types("Resource.meta.profile", "Patient") == ["canonical"]


def test_a_reserved_word_element_is_read_by_its_json_name() -> None:
    encounter = {"resourceType": "Encounter", "class": {"code": "AMB"}}
    assert values("Encounter.class", encounter) == [{"code": "AMB"}]


@pytest.mark.parametrize(
    "expression",
    [
        "Patient.deceased.exists() and Patient.deceased != false",
        "Patient.name.first().family",
        "Patient.telecom.where(system != 'fax')",
    ],
)
def test_other_fhirpath_falls_back_to_the_engine(expression: str) -> None:
    compiled = compile_expression(expression, "Patient")
    assert not compiled.native
    assert [b.root for b in compiled.branches] == [None]


def test_the_engine_evaluates_what_is_not_compiled() -> None:
    deceased = compile_expression(
        "Patient.deceased.exists() and Patient.deceased != false", "Patient"
    )
    assert deceased({"resourceType": "Patient", "deceasedDateTime": "2020-01-01"}) == [True]
    assert deceased({"resourceType": "Patient", "deceasedBoolean": False}) == [False]
    assert deceased({"resourceType": "Patient"}) == [False]
    first = compile_expression("Patient.name.first().family", "Patient")
    patient = {"resourceType": "Patient", "name": [{"family": "A"}, {"family": "B"}]}
    assert first(patient) == ["A"]


def test_an_unknown_element_is_left_to_the_engine() -> None:
    assert not compile_expression("Patient.nonsense", "Patient").native
    assert not compile_expression("Patient.name.nonsense", "Patient").native


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("Patient/1", "Patient"),
        ("Patient/1/_history/3", "Patient"),
        ("https://fhir.example/base/Patient/1", "Patient"),
        ("https://fhir.example/base/Patient/1/_history/3", "Patient"),
        ("#contained", None),
        ("urn:uuid:0b5c7a8e-8d1b-4a5e-9d8b-1c2b3a4d5e6f", None),
        ("just-an-id", None),
    ],
)
def test_reference_type(reference: str, expected: str | None) -> None:
    assert reference_type(reference) == expected
