"""Parsing of conditional criteria (If-None-Exist, conditional update and delete)."""

from __future__ import annotations

import pytest

from health import PROJECT_ROOT
from health.fhir.criteria import (
    Criterion,
    Token,
    criteria_hash,
    fast_criteria,
    parse_condition,
)
from health.fhir.errors import FhirError
from health.fhir.search.definitions import SearchDefinitions

DEFINITIONS = SearchDefinitions(PROJECT_ROOT / "fhir")
BASE = "http://testserver/fhir"


def condition(query: str, resource_type: str = "Patient") -> object:
    return parse_condition(resource_type, query, DEFINITIONS, base_url=BASE)


def key(query: str, resource_type: str = "Patient") -> str:
    return criteria_hash(
        resource_type, parse_condition(resource_type, query, DEFINITIONS, base_url=BASE)
    )


def test_identifier_and_id_take_the_token_first_lookup() -> None:
    request = parse_condition("Patient", "identifier=sys|1&_id=b,a", DEFINITIONS, base_url=BASE)
    assert fast_criteria(request) == [
        Criterion("_id", ("a", "b")),
        Criterion("identifier", (Token("sys", "1", True),)),
    ]


def test_other_criteria_go_to_the_search_engine() -> None:
    request = parse_condition(
        "Patient", "identifier=sys|1&family=Jensen", DEFINITIONS, base_url=BASE
    )
    assert fast_criteria(request) is None
    assert (
        fast_criteria(parse_condition("Patient", "identifier:not=x", DEFINITIONS, base_url=BASE))
        is None
    )


def test_escaped_separators_stay_in_the_value() -> None:
    request = parse_condition("Patient", r"identifier=sys|a\,b\|c", DEFINITIONS, base_url=BASE)
    assert fast_criteria(request) == [Criterion("identifier", (Token("sys", "a,b|c", True),))]


def test_percent_encoded_and_plain_queries_mean_the_same() -> None:
    assert key("identifier=urn%3Aoid%3A1.2%7C0101") == key("identifier=urn:oid:1.2|0101")


def test_equivalent_criteria_in_another_order_share_a_claim() -> None:
    assert key("identifier=s|1&_id=x") == key("_id=x&identifier=s|1")
    assert key("identifier=s|2,s|1") == key("identifier=s|1,s|2")
    assert key("identifier=s|1") != key("identifier=s|1", "Practitioner")
    assert key("family=jensen") != key("family:exact=jensen")


def test_result_parameters_are_not_criteria() -> None:
    request = parse_condition(
        "Patient", "_count=5&_format=json&_sort=family", DEFINITIONS, base_url=BASE
    )
    assert request.conditions == ()


def test_a_type_without_definitions_still_matches_on_identifier() -> None:
    types = set(DEFINITIONS.indexed_types)
    assert "Questionnaire" not in types
    request = parse_condition("Questionnaire", "identifier=s|1", DEFINITIONS, base_url=BASE)
    assert fast_criteria(request) == [Criterion("identifier", (Token("s", "1", True),))]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("nickname=Jensen", "not supported"),
        ("identifier:below=x", "Modifier"),
        ("identifier=", "no value"),
        ("identifier=|", "empty token"),
        ("birthdate=yesterday", "not a FHIR date"),
    ],
)
def test_unsupported_or_malformed_criteria_are_refused(query: str, message: str) -> None:
    with pytest.raises(FhirError) as refused:
        condition(query)
    assert refused.value.status == 400
    assert message in str(refused.value)
