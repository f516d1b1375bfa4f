"""Parsing of search requests, without a database: https://hl7.org/fhir/R4/search.html"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qsl

import pytest

from health import PROJECT_ROOT
from health.fhir.errors import FhirError
from health.fhir.search.definitions import SearchDefinitions
from health.fhir.search.includes import Include
from health.fhir.search.params import (
    Condition,
    Has,
    SearchLimits,
    SearchRequest,
    SortKey,
    parse_search,
    supported_parameters,
)
from health.fhir.search.values import (
    DateValue,
    NumberValue,
    QuantityValue,
    ReferenceValue,
    Token,
)

DEFINITIONS = SearchDefinitions(PROJECT_ROOT / "fhir")
BASE = "http://testserver/fhir"
LIMITS = SearchLimits(default_count=50, max_count=1000)


def parse(resource_type: str, query: str, *, lenient: bool = False) -> SearchRequest:
    pairs = parse_qsl(query, keep_blank_values=True)
    return parse_search(
        resource_type, pairs, DEFINITIONS, base_url=BASE, limits=LIMITS, lenient=lenient
    )


def only(resource_type: str, query: str) -> Condition:
    (condition,) = parse(resource_type, query).conditions
    assert isinstance(condition, Condition)
    return condition


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def test_token_forms() -> None:
    condition = only("Observation", "code=http://loinc.org|1234-5,|x,y,http://sys|")
    assert condition.values == (
        Token("http://loinc.org", "1234-5", True),
        Token(None, "x", True),
        Token(None, "y", False),
        Token("http://sys", None, True),
    )


def test_repeats_are_and_commas_are_or_and_escapes_are_kept() -> None:
    request = parse("Patient", r"family=a,b&family=c\,d&given=x\\y")
    assert [c.values for c in request.conditions] == [("a", "b"), ("c,d",), ("x\\y",)]  # type: ignore[union-attr]


def test_strings_are_normalised_except_for_exact() -> None:
    assert only("Patient", "family=JÉNSEN").values == ("jensen",)
    assert only("Patient", "family:exact=Jénsen").values == ("Jénsen",)
    assert only("Patient", "family:contains=ØRN").modifier == "contains"


@pytest.mark.parametrize(
    ("query", "modifier", "values"),
    [
        ("gender:missing=true", "missing", (True,)),
        ("birthdate:missing=false", "missing", (False,)),
        ("gender:not=male", "not", (Token(None, "male", False),)),
        ("language:text=Danish", "text", ("danish",)),
        ("identifier:of-type=http://t|MR|42", "of-type", (Token("http://t|MR", "42", True),)),
    ],
)
def test_modifiers(query: str, modifier: str, values: tuple[object, ...]) -> None:
    condition = only("Patient", query)
    assert (condition.modifier, condition.values) == (modifier, values)


@pytest.mark.parametrize(
    ("value", "prefix", "low", "high"),
    [
        ("2020", "eq", utc(2020, 1, 1), utc(2021, 1, 1)),
        ("ge2020-02", "ge", utc(2020, 2, 1), utc(2020, 3, 1)),
        ("lt2020-12-31", "lt", utc(2020, 12, 31), utc(2021, 1, 1)),
        ("sa2020-01-01T10:00", "sa", utc(2020, 1, 1, 10), utc(2020, 1, 1, 10, 1)),
        ("eb2020-01-01T10:00:00+02:00", "eb", utc(2020, 1, 1, 8), utc(2020, 1, 1, 8, 0, 1)),
        (
            "ap2020-01-01T10:00:00.5Z",
            "ap",
            utc(2020, 1, 1, 10, 0, 0, 500000),
            utc(2020, 1, 1, 10, 0, 0, 600000),
        ),
    ],
)
def test_dates_become_ranges_by_precision(
    value: str, prefix: str, low: datetime, high: datetime
) -> None:
    assert only("Patient", f"birthdate={value}").values == (DateValue(prefix, low, high),)


def test_an_unencoded_plus_in_a_zone_is_read_as_plus() -> None:
    (value,) = only("Patient", "birthdate=2020-01-01T10:00:00 02:00").values
    assert value.low == utc(2020, 1, 1, 8)


def test_numbers_and_quantities_carry_their_precision() -> None:
    (quantity,) = only("Observation", "value-quantity=gt5.40|http://unitsofmeasure.org|mg").values
    assert quantity == QuantityValue(
        NumberValue("gt", 5.4, 5.395, 5.405), "http://unitsofmeasure.org", "mg"
    )
    (by_unit,) = only("Observation", "value-quantity=100||kg").values
    assert by_unit == QuantityValue(NumberValue("eq", 100.0, 99.5, 100.5), None, "kg")
    (scientific,) = only("Observation", "value-quantity=1e2").values
    assert (scientific.number.low, scientific.number.high) == (50.0, 150.0)


def test_reference_forms() -> None:
    condition = only(
        "Observation",
        f"subject=Patient/1,2,{BASE}/Patient/3,Patient/4/_history/2,http://other/Patient/5",
    )
    assert condition.values == (
        ReferenceValue("Patient", "1"),
        ReferenceValue(None, "2"),
        ReferenceValue("Patient", "3"),
        ReferenceValue("Patient", "4"),
        ReferenceValue(None, None, "http://other/Patient/5"),
    )
    typed = only("Observation", "subject:Patient=7")
    assert (typed.target_types, typed.modifier) == (("Patient",), None)


def test_chaining_one_level() -> None:
    chained = only("Observation", "subject:Patient.identifier=urn:cpr|0101")
    assert chained.target_types == ("Patient",)
    assert chained.chain == Condition("identifier", "token", (Token("urn:cpr", "0101", True),))
    untyped = only("Observation", "subject.name=jensen")
    assert "Patient" in untyped.target_types
    assert untyped.chain is not None and untyped.chain.values == ("jensen",)


def test_has_one_level() -> None:
    (has,) = parse("Patient", "_has:Observation:subject:code=1234-5").conditions
    assert has == Has(
        "Observation", "subject", Condition("code", "token", (Token(None, "1234-5", False),))
    )


def test_result_parameters() -> None:
    request = parse(
        "Observation",
        "_count=5000&_sort=-date,code,_id&_total=none&_summary=true&_elements=code,value"
        "&_include=Observation:subject&_revinclude:iterate=Provenance:target&_cursor=abc",
    )
    assert request.count == 1000
    assert request.sort == (
        SortKey("date", "date", True),
        SortKey("code", "token"),
        SortKey("_id", "id"),
    )
    assert (request.total, request.summary, request.elements) == ("none", "true", ("code", "value"))
    assert request.includes == (
        Include("Observation", "subject"),
        Include("Provenance", "target", reverse=True, iterate=True),
    )
    assert request.cursor == "abc"
    assert ("_cursor", "abc") not in request.accepted
    assert request.conditions == ()


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("nickname=x", "nickname"),
        ("code:below=x", "below"),
        ("identifier:in=http://vs", ":in"),
        ("date:exact=2020", ":exact"),
        ("subject.organization.name=x", "more than one level"),
        ("_has:Observation:subject:_has:Provenance:target:agent=x", "nested"),
        ("_sort=nickname", "nickname"),
        ("_contained=true", "_contained"),
        ("_include=Observation:*:Patient&_include=Observation:nothing", "nothing"),
    ],
)
def test_unknown_or_unsupported_parameters_are_400_naming_them(query: str, named: str) -> None:
    with pytest.raises(FhirError) as refused:
        parse("Observation", query)
    assert refused.value.status == 400
    assert named in str(refused.value)


@pytest.mark.parametrize(
    "query",
    [
        "birthdate=yesterday",
        "gender=",
        "identifier=|",
        "gender:missing=maybe",
        "_count=-1",
        "_total=all",
        "_summary=everything",
        "general-practitioner:Patient=1",
        "_include=Observation:subject",
    ],
)
def test_malformed_values_are_400_even_when_lenient(query: str) -> None:
    with pytest.raises(FhirError) as refused:
        parse("Patient", query, lenient=True)
    assert refused.value.status == 400


def test_lenient_handling_ignores_unknown_parameters_and_leaves_them_out() -> None:
    request = parse("Patient", "nickname=x&family=jensen&family:below=y&_format=json", lenient=True)
    assert request.ignored == ("nickname", "family:below")
    assert request.accepted == (("family", "jensen"), ("_format", "json"))
    assert len(request.conditions) == 1


def test_supported_parameters_come_from_the_definitions() -> None:
    patient = dict(supported_parameters("Patient", DEFINITIONS, has_identifier=True))
    assert patient["_id"] == "token"
    assert patient["_lastUpdated"] == "date"
    assert patient["birthdate"] == "date"
    assert patient["general-practitioner"] == "reference"
    unindexed = dict(supported_parameters("Questionnaire", DEFINITIONS, has_identifier=True))
    assert unindexed == {"_id": "token", "_lastUpdated": "date", "identifier": "token"}
