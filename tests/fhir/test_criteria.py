"""Parsing of conditional and search criteria."""

from __future__ import annotations

import pytest

from health.fhir.criteria import (
    Criterion,
    Token,
    criteria_hash,
    parse_criteria,
    parse_query,
    parse_token,
)
from health.fhir.errors import FhirError


def test_token_forms_follow_the_spec() -> None:
    # https://hl7.org/fhir/R4/search.html#token
    assert parse_token("http://x|1") == Token("http://x", "1", True)
    assert parse_token("|1") == Token(None, "1", True)
    assert parse_token("1") == Token(None, "1", False)
    assert parse_token("http://x|") == Token("http://x", None, True)


def test_escaped_separators_stay_in_the_value() -> None:
    criteria = parse_criteria("Patient", [("identifier", r"sys|a\,b\|c")])
    assert criteria == [Criterion("identifier", (Token("sys", "a,b|c", True),))]


def test_commas_are_alternatives_and_repeats_are_separate_criteria() -> None:
    criteria = parse_criteria("Patient", [("_id", "b,a"), ("_id", "c")])
    assert criteria == [Criterion("_id", ("a", "b")), Criterion("_id", ("c",))]


def test_percent_encoded_and_plain_queries_mean_the_same() -> None:
    encoded = parse_criteria("Patient", parse_query("identifier=urn%3Aoid%3A1.2%7C0101"))
    plain = parse_criteria("Patient", parse_query("identifier=urn:oid:1.2|0101"))
    assert encoded == plain
    assert criteria_hash("Patient", encoded) == criteria_hash("Patient", plain)


def test_equivalent_criteria_in_another_order_share_a_claim() -> None:
    one = parse_criteria("Patient", parse_query("identifier=s|1&_id=x"))
    other = parse_criteria("Patient", parse_query("_id=x&identifier=s|1"))
    assert criteria_hash("Patient", one) == criteria_hash("Patient", other)
    assert criteria_hash("Patient", one) != criteria_hash("Practitioner", one)


def test_result_parameters_are_not_criteria() -> None:
    assert parse_criteria("Patient", [("_count", "5"), ("_format", "json")]) == []


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("name", "Jensen", "not supported"),
        ("identifier:of-type", "x|y|z", "Modifier"),
        ("identifier", "", "no value"),
        ("identifier", "|", "empty token"),
    ],
)
def test_unsupported_or_empty_criteria_are_refused(name: str, value: str, message: str) -> None:
    with pytest.raises(FhirError) as refused:
        parse_criteria("Patient", [(name, value)])
    assert refused.value.status == 400
    assert message in str(refused.value)
