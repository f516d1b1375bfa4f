"""health.fhir.model_validators: the faster validators decide exactly as fhir_core's own.

Each replacement is run next to the library's original on the same input, for every
served resource type and the data types they use, on input that passes and input that
breaks each rule: both must return the same or raise the same errors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fhir_core.utils import is_list_type, is_primitive_type
from pydantic import ValidationError

from health import PROJECT_ROOT
from health.fhir import model_validators
from health.fhir.errors import FhirError
from health.fhir.resource_types import ResourceTypes, model_class
from health.fhir.validation import validate_resource

# Data types with choice groups, required primitives or lists of complex elements,
# besides the resources.
_DATA_TYPES = (
    "Coding",
    "CodeableConcept",
    "Identifier",
    "Extension",
    "Dosage",
    "DosageDoseAndRate",
    "Timing",
    "TimingRepeat",
    "ObservationComponent",
    "ObservationReferenceRange",
    "Annotation",
    "HumanName",
    "Address",
    "Quantity",
    "Attachment",
    "Reference",
    "Period",
)


def _models() -> list[Any]:
    types = ResourceTypes(PROJECT_ROOT / "fhir")
    return [model_class(name) for name in (*types.names, *_DATA_TYPES)]


MODELS = _models()


def _outcome(run: Callable[[], Any]) -> Any:
    """What a validator did: returned (the value) or raised (type, message, errors)."""
    try:
        return ("returned", run())
    except ValidationError as error:
        return ("raised", type(error), error.errors(include_url=False))
    except (ValueError, TypeError) as error:
        return ("raised", type(error), str(error))


def test_installed_for_the_checked_fhir_core() -> None:
    assert model_validators.install()
    observation = model_class("Observation")
    with pytest.raises(ValidationError) as caught:
        observation.model_validate({"code": {"text": "x"}, "status": "final", "category": [None]})
    assert caught.value.errors()[0]["loc"] == ("category",)
    assert observation in model_validators._complex_lists


def _null_inputs(model: Any) -> Iterator[dict[str, Any]]:
    yield {}
    for name, field in model.model_fields.items():
        key = field.alias or name
        yield {key: [None]}
        yield {key: [{"id": "a"}, None]}
        yield {name: [None]}
        if is_list_type(field) and not is_primitive_type(field):
            yield {key: [{"id": "a"}]}


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_nulls_in_lists_are_refused_as_by_the_library(model: Any) -> None:
    for data in _null_inputs(model):
        assert _outcome(lambda d=data: model_validators.reject_null_complex_elements(model, d)) == (
            _outcome(lambda d=data: model_validators._original_reject_nulls(model, d))
        ), data


def _constructed(model: Any) -> Iterator[Any]:
    """Elements built without validation: nothing set, each required primitive set or
    given by an extension only, and each choice group with one, two or no values."""
    yield model.model_construct()
    element = model.model_construct()
    required = element.get_required_fields()
    aliases = model.get_alias_mapping()
    for name, extension in required:
        yield model.model_construct(**{aliases[name]: "x"})
        if extension is not None:
            yield model.model_construct(**{extension: {"extension": [{"url": "u"}]}})
            yield model.model_construct(**{extension: {"extension": []}})
    everything = {aliases[name]: "x" for name, _ in required}
    yield model.model_construct(**everything)
    for fields in element.get_one_of_many_fields().values():
        yield model.model_construct(**everything, **{fields[0]: "x"})
        if len(fields) > 1:
            yield model.model_construct(**everything, **{fields[0]: "x", fields[1]: "y"})


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_required_elements_and_choices_are_checked_as_by_the_library(model: Any) -> None:
    original = model_validators._original_after
    for element in _constructed(model):
        mine = _outcome(lambda e=element: model_validators.validate_after_model_construction(e))
        assert mine == _outcome(lambda e=element: original(e)), element


CHOICES = "['medicationCodeableConcept', 'medicationReference']"


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        (
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "x"},
                "category": [None],
                "note": [{"text": "n"}, None],
            },
            [
                ("value", "None is not allowed as an element of category", "Observation.category"),
                ("value", "None is not allowed as an element of note", "Observation.note"),
            ],
        ),
        (
            {
                "resourceType": "Condition",
                "subject": {"reference": "Patient/1"},
                "evidence": [{"code": [None]}],
            },
            [
                (
                    "value",
                    "None is not allowed as an element of code",
                    "Condition.evidence[0].code",
                )
            ],
        ),
        (
            {"resourceType": "Observation", "code": {"text": "x"}},
            [
                (
                    "required",
                    "Missing required element: Value for the field 'status' is required.",
                    "Observation.status",
                )
            ],
        ),
        (
            {
                "resourceType": "MedicationRequest",
                "subject": {"reference": "Patient/1"},
                "intent": "order",
                "status": "active",
            },
            [
                (
                    "value",
                    f"Value error, Expect any of field value from this list {CHOICES}.",
                    "MedicationRequest",
                )
            ],
        ),
        (
            {
                "resourceType": "MedicationRequest",
                "subject": {"reference": "Patient/1"},
                "intent": "order",
                "status": "active",
                "medicationCodeableConcept": {"text": "a"},
                "medicationReference": {"reference": "Medication/1"},
            },
            [
                (
                    "value",
                    "Value error, Any of one field value is expected from this list "
                    f"{CHOICES}, but got multiple!",
                    "MedicationRequest",
                )
            ],
        ),
    ],
)
def test_resources_get_the_library_s_issues(
    resource: dict[str, Any], expected: list[tuple[str, str, str]]
) -> None:
    # What validate_resource answered with fhir_core's own validators (checked before
    # the replacements went in): the same issues, at the same locations.
    types = ResourceTypes(PROJECT_ROOT / "fhir")
    with pytest.raises(FhirError) as caught:
        validate_resource(resource, types)
    found = sorted(
        (issue.code, issue.diagnostics, expression)
        for issue in caught.value.issues
        for expression in issue.expression
    )
    assert found == sorted(expected)


def test_a_primitive_given_by_its_extension_alone_is_accepted() -> None:
    types = ResourceTypes(PROJECT_ROOT / "fhir")
    validate_resource(
        {
            "resourceType": "Observation",
            "code": {"text": "x"},
            "_status": {"extension": [{"url": "http://example.org/why", "valueString": "n/a"}]},
        },
        types,
    )
