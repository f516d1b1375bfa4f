"""Faster equivalents of two validators that fhir.resources runs on every element.

fhir_core's `FHIRAbstractModel` (the base of every R4B model) runs, for each element of
each resource (a Synthea Observation has about twenty):

- `reject_null_complex_elements` (a "before" validator): it loops over every field of
  the element's model and asks two lru-cached functions about each field's annotation,
  to find the lists of complex elements, which may not hold a null;
- `validate_after_model_construction` (an "after" validator, which pydantic runs twice
  per element): it rebuilds the model's required primitives and choice groups (`x[x]`)
  on every call and reads them through `model_fields`.

Together they were about a third of validation time (bench/validation.py), and
validation is the largest single cost of ingest (docs/BENCHMARKS.md, "Ingest"). The
replacements work out the same per model class once and check each element against
that. Whenever an element fails a check they call the library's own validator, so
every error is raised by the library's code, exactly as before; only passing elements
take the short way.

pydantic binds a model's validators when the class is created, so `install` has to run
before the R4B classes are: health.fhir.resource_types, through which the server reaches
every model class, calls it on import. A class created earlier keeps the library's
validators (slower, same outcome). Only the fhir_core version these were checked
against is patched; after an upgrade the library's own validators run until this module
is checked against the new code.
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from fhir_core.fhirabstractmodel import FHIRAbstractModel
from fhir_core.utils import is_list_type, is_primitive_type

CHECKED_FHIR_CORE = "1.1.12"

_original_reject_nulls = FHIRAbstractModel.reject_null_complex_elements.__func__
_original_required = FHIRAbstractModel._validate_required_primitive_elements
_original_choices = FHIRAbstractModel._validate_one_of_many
_original_after = FHIRAbstractModel.validate_after_model_construction

_MISSING = object()
# Per model class: the (name, alias) of its lists of complex elements.
_complex_lists: dict[type, tuple[tuple[str, str | None], ...]] = {}
# Per model class: the fields of its required primitives, and its choice groups with
# whether one of each is required.
_after_checks: dict[type, tuple[tuple[str, ...], tuple[tuple[tuple[str, ...], bool], ...]]] = {}


def install() -> bool:
    """Put the replacements on FHIRAbstractModel, once; False when fhir_core is not the
    version they were checked against (the library's validators then stay)."""
    if version("fhir_core") != CHECKED_FHIR_CORE:
        return False
    if FHIRAbstractModel.__dict__.get("validate_after_model_construction") is not (
        validate_after_model_construction
    ):
        model = FHIRAbstractModel
        model.reject_null_complex_elements = classmethod(reject_null_complex_elements)
        model.validate_after_model_construction = validate_after_model_construction
    return True


def reject_null_complex_elements(cls: type[FHIRAbstractModel], data: Any) -> Any:
    """`FHIRAbstractModel.reject_null_complex_elements`, over the model's lists of
    complex elements only."""
    if not isinstance(data, dict):
        return data
    fields = _complex_lists.get(cls)
    if fields is None:
        fields = _complex_lists[cls] = tuple(
            (name, field.alias)
            for name, field in cls.model_fields.items()
            if is_list_type(field) and not is_primitive_type(field) and not name.endswith("__ext")
        )
    for name, alias in fields:
        value = data.get(alias if alias and alias in data else name)
        if isinstance(value, list) and any(item is None for item in value):
            return _original_reject_nulls(cls, data)
    return data


def validate_after_model_construction(self: FHIRAbstractModel) -> FHIRAbstractModel:
    """`FHIRAbstractModel.validate_after_model_construction`, with the model's required
    primitives and choice groups worked out once per class."""
    checks = _after_checks.get(type(self))
    if checks is None:
        checks = _after_checks[type(self)] = _after_checks_of(self)
    required, choices = checks
    for key in required:
        # The library's test, `not in (missing, None)`, with its equality semantics.
        if getattr(self, key, _MISSING) in (_MISSING, None):
            # Missing, or given only by an extension (which the library accepts).
            _original_required(self)
            break
    for fields, one_required in choices:
        given = 0
        for name in fields:
            if getattr(self, name, None) is not None:
                given += 1
        if given > 1 or (one_required and not given):
            _original_choices(self)
            break
    return self


def _after_checks_of(
    element: FHIRAbstractModel,
) -> tuple[tuple[str, ...], tuple[tuple[tuple[str, ...], bool], ...]]:
    # The generated models list these as constants (get_required_fields and
    # get_one_of_many_fields are per class, though instance methods).
    model = type(element)
    aliases = model.get_alias_mapping()
    required = tuple(aliases[name] for name, _ in element.get_required_fields())
    choices = tuple(
        (
            tuple(fields),
            model.model_fields[fields[0]].json_schema_extra["one_of_many_required"] is True,
        )
        for fields in element.get_one_of_many_fields().values()
    )
    return required, choices
