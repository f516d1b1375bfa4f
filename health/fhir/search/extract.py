"""Search index rows extracted from a resource at write time.

Every search parameter of the resource's type (health.fhir.search.definitions) is
compiled once into branches (health.fhir.search.paths) and paired with the conversion
its parameter type prescribes for the FHIR type the branch reaches
(https://hl7.org/fhir/R4/search.html#ptypes). Extraction then only looks keys up and
converts. It never fails a write: values it cannot read (a malformed date, an
unsupported type) are left out of the index.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from health.access.attribution import reporters
from health.fhir.search.dates import date_range, period_range, timing_range
from health.fhir.search.definitions import SearchDefinitions
from health.fhir.search.index_rows import IndexRows
from health.fhir.search.normalise import normalise as normalise_text
from health.fhir.search.paths import (
    QUANTITY_TYPES,
    CompiledExpression,
    compile_expression,
)

# Columns of the resource table, searched there rather than in the index.
RESOURCE_COLUMNS = frozenset({"_id", "_lastUpdated"})
# The suffixes of the parameter of an identifier's extra rows: by its type (:of-type),
# and by the sources credited with it.
OF_TYPE = ":of-type"
REPORTED_BY = ":reported-by"
# Money is searched with the ISO 4217 currency as its system:
# https://hl7.org/fhir/R4/search.html#quantity
CURRENCY_SYSTEM = "urn:iso:std:iso:4217"

# Display texts and names repeat across resources (code displays, city names): caching
# the normalised form saves most of the Unicode work at ingest.
normalise = lru_cache(maxsize=16384)(normalise_text)

# Converts the values of one parameter and appends its rows.
Convert = Callable[[str, list[Any], IndexRows], None]
Values = Callable[[dict[str, Any]], list[Any]]
Entry = tuple[str, Values, Convert]


class Extractor:
    """Index rows of resources, by the search parameters of their type."""

    def __init__(self, definitions: SearchDefinitions, fhir_base_url: str) -> None:
        self._local_prefix = fhir_base_url.rstrip("/") + "/"
        self._converters = _converters(self)
        self._plans: dict[str, list[tuple[str | None, list[Entry]]]] = {}
        self.expressions: dict[tuple[str, str], CompiledExpression] = {}
        for resource_type in definitions.indexed_types:
            self._plans[resource_type] = self._plan(definitions, resource_type)
        # Types without definitions still index `identifier`: conditional create,
        # update and delete and conditional references match on it for every type.
        self._default_plan = [("identifier", [self._identifier_entry()])]

    def _plan(
        self, definitions: SearchDefinitions, resource_type: str
    ) -> list[tuple[str | None, list[Entry]]]:
        """The entries of a type grouped by the top-level key their values are under."""
        by_root: dict[str | None, list[Entry]] = {}
        parameters = definitions.for_type(resource_type)
        for code, parameter in parameters.items():
            if code in RESOURCE_COLUMNS:
                continue
            compiled = compile_expression(parameter.expression, resource_type)
            self.expressions[(resource_type, code)] = compiled
            for branch in compiled.branches:
                convert = self._converters.get((parameter.type, branch.fhir_type))
                if convert is not None:
                    by_root.setdefault(branch.root, []).append((code, branch.values, convert))
        if "identifier" not in parameters:
            by_root.setdefault("identifier", []).append(self._identifier_entry())
        return list(by_root.items())

    def _identifier_entry(self) -> Entry:
        compiled = compile_expression("Resource.identifier", "Basic")
        return (
            "identifier",
            compiled.branches[0].values,
            self._converters[("token", "Identifier")],
        )

    def extract(self, resource: dict[str, Any]) -> IndexRows:
        """The index rows of `resource` (a valid resource as JSON)."""
        rows = IndexRows()
        plan = self._plans.get(resource.get("resourceType", ""), self._default_plan)
        for root, entries in plan:
            if root is not None and root not in resource:
                continue
            for code, values_of, convert in entries:
                try:
                    values = values_of(resource)
                    if values:
                        convert(code, values, rows)
                except Exception:  # indexing never fails a write (see the module docstring)
                    continue
        return rows

    # Conversions by parameter type and FHIR type

    def reference(self, code: str, values: list[Any], rows: IndexRows) -> None:
        for value in values:
            if type(value) is dict:
                literal = value.get("reference")
                if type(literal) is str:
                    self._add_reference(code, literal, rows)
            elif type(value) is str:
                self._add_reference(code, value, rows)

    def _add_reference(self, code: str, literal: str, rows: IndexRows) -> None:
        # https://hl7.org/fhir/R4/references.html#literal: relative `Type/id` (maybe
        # versioned) or absolute; an absolute URL on this server is a local reference.
        # Contained references (`#x`) point inside the resource and are not indexed;
        # a Reference with only an identifier has no `reference` and is not either.
        if not literal or literal[0] == "#":
            return
        if literal.startswith(self._local_prefix):
            literal = literal[len(self._local_prefix) :]
        elif ":" in literal:
            rows.references.append((code, None, None, literal))
            return
        parts = literal.split("/")
        versioned = len(parts) == 4 and parts[2] == "_history"
        if (len(parts) == 2 or versioned) and parts[0] and parts[1]:
            rows.references.append((code, parts[0], parts[1], None))
            return
        rows.references.append((code, None, None, literal))


def _converters(extractor: Extractor) -> dict[tuple[str, str | None], Convert]:
    table: dict[tuple[str, str | None], Convert] = {
        ("token", "Coding"): _token_codings,
        ("token", "CodeableConcept"): _token_concepts,
        ("token", "Identifier"): _token_identifiers,
        ("token", "ContactPoint"): _token_contact_points,
        ("token", "boolean"): _token_booleans,
        ("token", None): _token_by_shape,
        ("string", "HumanName"): _string_names,
        ("string", "Address"): _string_addresses,
        ("string", None): _string_by_shape,
        ("date", "Period"): _date_periods,
        ("date", "Timing"): _date_timings,
        ("date", None): _date_by_shape,
        ("reference", "Reference"): extractor.reference,
        ("reference", None): extractor.reference,
        ("quantity", "Money"): _quantity_money,
        ("quantity", None): _quantity_by_shape,
        ("number", None): _numbers,
        ("uri", None): _uris,
    }
    for primitive in ("code", "string", "id", "uri", "url", "canonical", "oid", "uuid"):
        table[("token", primitive)] = _token_primitives
        table[("reference", primitive)] = extractor.reference
    for primitive in ("string", "markdown", "code", "id", "uri", "url", "canonical"):
        table[("string", primitive)] = _strings
    for primitive in ("date", "dateTime", "instant"):
        table[("date", primitive)] = _date_strings
    for quantity in QUANTITY_TYPES:
        table[("quantity", quantity)] = _quantities
    for number in ("decimal", "integer", "positiveInt", "unsignedInt"):
        table[("number", number)] = _numbers
    for uri in ("uri", "url", "canonical", "oid", "uuid"):
        table[("uri", uri)] = _uris
    return table


# token: https://hl7.org/fhir/R4/search.html#token


def _token_codings(code: str, values: list[Any], rows: IndexRows) -> None:
    for coding in values:
        if type(coding) is dict:
            _add_coding(code, coding, rows)


def _add_coding(code: str, coding: dict[str, Any], rows: IndexRows) -> None:
    system, value, display = coding.get("system"), coding.get("code"), coding.get("display")
    if system is not None or value is not None:
        rows.tokens.append((code, system, value, normalise(display) if display else None))


def _token_concepts(code: str, values: list[Any], rows: IndexRows) -> None:
    # Each coding is a row; the concept's text (for :text) is a row of its own unless
    # it repeats a coding's display.
    for concept in values:
        if type(concept) is not dict:
            continue
        displays: set[str] = set()
        for coding in concept.get("coding") or ():
            if type(coding) is dict:
                _add_coding(code, coding, rows)
                display = coding.get("display")
                if type(display) is str:
                    displays.add(display)
        text = concept.get("text")
        if type(text) is str and text and text not in displays:
            normalised = normalise(text)
            if normalised not in {normalise(d) for d in displays}:
                rows.tokens.append((code, None, None, normalised))


def _token_identifiers(code: str, values: list[Any], rows: IndexRows) -> None:
    # (system, value) as conditional interactions match them; each identifier type
    # coding adds a row for :of-type, system "type-system|type-code" and code the value
    # (https://hl7.org/fhir/R4/search.html#token). A type coding without a system is "|code".
    # An identifier of the citizen's Patient credited to sources (health/access/
    # attribution.py) adds a row per source, system "Organization/x|system": what a
    # source's search by its own record number reads (health/access/source_search.py).
    of_type = f"{code}{OF_TYPE}"
    for identifier in values:
        if type(identifier) is not dict:
            continue
        system, value = identifier.get("system"), identifier.get("value")
        if system is None and value is None:
            continue
        rows.tokens.append((code, system, value, None))
        if "extension" in identifier and value is not None:
            for source in filter(None, reporters(identifier)):
                rows.tokens.append(
                    (f"{code}{REPORTED_BY}", f"{source}|{system or ''}", value, None)
                )
        identifier_type = identifier.get("type")
        if value is None or type(identifier_type) is not dict:
            continue
        for coding in identifier_type.get("coding") or ():
            if type(coding) is dict and coding.get("code"):
                type_system = coding.get("system") or ""
                rows.tokens.append((of_type, f"{type_system}|{coding['code']}", value, None))


def _token_contact_points(code: str, values: list[Any], rows: IndexRows) -> None:
    # The spec searches ContactPoint.value; the server may also use ContactPoint.system,
    # so it is kept as the row's system (`telecom=email|a@b.dk` works, `telecom=a@b.dk`
    # matches whatever the system).
    for contact in values:
        if type(contact) is dict and contact.get("value") is not None:
            rows.tokens.append((code, contact.get("system"), contact["value"], None))


def _token_booleans(code: str, values: list[Any], rows: IndexRows) -> None:
    for value in values:
        if type(value) is bool:
            rows.tokens.append((code, None, "true" if value else "false", None))


def _token_primitives(code: str, values: list[Any], rows: IndexRows) -> None:
    # A code has its value set's system implicitly; a search names it with the bare code.
    for value in values:
        if type(value) is str and value:
            rows.tokens.append((code, None, value, None))


def _token_by_shape(code: str, values: list[Any], rows: IndexRows) -> None:
    for value in values:
        if type(value) is bool:
            _token_booleans(code, [value], rows)
        elif type(value) is str:
            _token_primitives(code, [value], rows)
        elif type(value) is dict:
            if "coding" in value or "text" in value:
                _token_concepts(code, [value], rows)
            elif "value" in value:
                _token_identifiers(code, [value], rows)
            else:
                _token_codings(code, [value], rows)


# string: https://hl7.org/fhir/R4/search.html#string

_NAME_PARTS = ("family", "given", "prefix", "suffix", "text")
_ADDRESS_PARTS = ("line", "city", "district", "state", "postalCode", "country", "text")


def _strings(code: str, values: list[Any], rows: IndexRows) -> None:
    for value in values:
        if type(value) is str and value:
            rows.strings.append((code, normalise(value), value))


def _string_parts(code: str, values: list[Any], rows: IndexRows, parts: tuple[str, ...]) -> None:
    for value in values:
        if type(value) is not dict:
            continue
        for part in parts:
            found = value.get(part)
            if found is None:
                continue
            for text in found if type(found) is list else (found,):
                if type(text) is str and text:
                    rows.strings.append((code, normalise(text), text))


def _string_names(code: str, values: list[Any], rows: IndexRows) -> None:
    _string_parts(code, values, rows, _NAME_PARTS)


def _string_addresses(code: str, values: list[Any], rows: IndexRows) -> None:
    _string_parts(code, values, rows, _ADDRESS_PARTS)


def _string_by_shape(code: str, values: list[Any], rows: IndexRows) -> None:
    _strings(code, values, rows)
    _string_parts(code, values, rows, _NAME_PARTS + _ADDRESS_PARTS[:-1])


# date: https://hl7.org/fhir/R4/search.html#date


def _dates_of(
    code: str, values: list[Any], rows: IndexRows, kind: type, to_range: Callable[[Any], Any]
) -> None:
    """Index each value of JSON type `kind` as the date range `to_range` gives it."""
    for value in values:
        if type(value) is kind:
            found = to_range(value)
            if found is not None:
                rows.dates.append((code, *found))


def _date_strings(code: str, values: list[Any], rows: IndexRows) -> None:
    _dates_of(code, values, rows, str, date_range)


def _date_periods(code: str, values: list[Any], rows: IndexRows) -> None:
    _dates_of(code, values, rows, dict, period_range)


def _date_timings(code: str, values: list[Any], rows: IndexRows) -> None:
    _dates_of(code, values, rows, dict, timing_range)


def _date_by_shape(code: str, values: list[Any], rows: IndexRows) -> None:
    _date_strings(code, values, rows)
    for value in values:
        if type(value) is dict:
            if "event" in value or "repeat" in value:
                _date_timings(code, [value], rows)
            else:
                _date_periods(code, [value], rows)


# quantity: https://hl7.org/fhir/R4/search.html#quantity


def _quantities(code: str, values: list[Any], rows: IndexRows) -> None:
    for value in values:
        if type(value) is dict:
            number = value.get("value")
            if type(number) in (int, float):
                rows.quantities.append(
                    (code, float(number), value.get("system"), value.get("code"), value.get("unit"))
                )


def _quantity_money(code: str, values: list[Any], rows: IndexRows) -> None:
    for value in values:
        if type(value) is dict:
            number, currency = value.get("value"), value.get("currency")
            if type(number) in (int, float):
                rows.quantities.append(
                    (code, float(number), CURRENCY_SYSTEM if currency else None, currency, None)
                )


def _quantity_by_shape(code: str, values: list[Any], rows: IndexRows) -> None:
    for value in values:
        if type(value) is dict:
            if "currency" in value:
                _quantity_money(code, [value], rows)
            else:
                _quantities(code, [value], rows)


# number and uri


def _numbers(code: str, values: list[Any], rows: IndexRows) -> None:
    for value in values:
        if type(value) in (int, float):
            rows.numbers.append((code, float(value)))


def _uris(code: str, values: list[Any], rows: IndexRows) -> None:
    for value in values:
        if type(value) is str and value:
            rows.uris.append((code, value))
