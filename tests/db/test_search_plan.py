"""A search's shape and values (health/db/search_plan.py): what makes two searches one
shape, and the values each takes into its slots."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qsl

import pytest

from health import PROJECT_ROOT
from health.db.search_plan import Plan, Shape, escape_like, prefix_end
from health.fhir.search.definitions import SearchDefinitions
from health.fhir.search.params import SearchLimits, parse_search

DEFINITIONS = SearchDefinitions(PROJECT_ROOT / "fhir")
NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)


def _plan(query: str, resource_type: str = "Observation") -> tuple[Shape, list[object], bool]:
    request = parse_search(
        resource_type,
        parse_qsl(query, keep_blank_values=True),
        DEFINITIONS,
        base_url="http://testserver/fhir",
        limits=SearchLimits(default_count=50, max_count=1000),
    )
    plan = Plan(NOW)
    shape = plan.request(request)
    return shape, plan.values, plan.cacheable


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("code=http://loinc.org|1111-1", "code=http://snomed.info/sct|2222-2"),
        ("date=ge2015-01-01&date=lt2020", "date=ge1999&date=lt2000-06"),
        ("_id=a", "_id=b,c,d"),
        ("value-quantity=ap5", "value-quantity=ap500"),
        ("patient=Patient/a&_sort=-date", "patient=Patient/b&_sort=-date"),
    ],
)
def test_other_values_are_the_same_shape(first: str, second: str) -> None:
    shape, values, cacheable = _plan(first)
    other, other_values, _ = _plan(second)

    assert shape == other
    assert values != other_values
    assert cacheable


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("code=http://loinc.org|1111-1", "code=1111-1"),
        ("code=http://loinc.org|1111-1", "code=|1111-1"),
        ("code=1111-1", "code=1111-1,2222-2"),
        ("date=ge2015", "date=gt2015"),
        ("code=1111-1", "code:not=1111-1"),
        ("_sort=date", "_sort=-date"),
        ("code=1111-1", "code=1111-1&status=final"),
    ],
)
def test_what_changes_the_clause_changes_the_shape(first: str, second: str) -> None:
    assert _plan(first)[0] != _plan(second)[0]


def test_derived_values_are_the_plans_own() -> None:
    _, values, _ = _plan("family=han", "Patient")
    assert values == ["han", "hao"]

    _, values, _ = _plan("family:contains=50%_off", "Patient")
    assert values == ["%50\\%\\_off%"]

    # ap: the searched day widened by a tenth of its distance to now, at least a day.
    _, values, _ = _plan("date=ap2026-11-19")
    low, high = values
    assert isinstance(low, datetime) and isinstance(high, datetime)
    assert low < datetime(2026, 11, 19, tzinfo=UTC) and high > datetime(2026, 11, 20, tzinfo=UTC)


def test_chains_and_has_are_not_cached() -> None:
    assert not _plan("subject:Patient.family=han")[2]
    assert not _plan("_has:Observation:patient:code=1111-1", "Patient")[2]


def test_prefix_end_and_like_escapes() -> None:
    assert prefix_end("abc") == "abd"
    assert prefix_end("a\U0010ffff") == "b"
    assert prefix_end("\U0010ffff") is None
    assert prefix_end("") is None
    assert prefix_end("a\ud7ff") == "a\ue000"  # past the surrogates
    assert escape_like("a%b_c\\") == "a\\%b\\_c\\\\"
