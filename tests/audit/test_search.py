"""AuditEvent search parameters, parsed, and the searchset Bundle they make."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from health.audit.search import parse_audit_search, searchset
from health.fhir.errors import FhirError

BASE = "https://health.example/fhir"


def _parse(*pairs: tuple[str, str], lenient: bool = False) -> Any:
    return parse_audit_search(
        list(pairs), base_url=BASE, default_count=50, max_count=100, lenient=lenient
    )


@pytest.mark.parametrize("value", ["anna", "Patient/anna", f"{BASE}/Patient/anna"])
def test_patient_is_an_id_or_a_reference(value: str) -> None:
    assert _parse(("patient", value)).patient_ids == {"anna"}


@pytest.mark.parametrize(
    ("value", "since", "until"),
    [
        ("2026-03", datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)),
        ("ge2026-03-02", datetime(2026, 3, 2, tzinfo=UTC), None),
        ("gt2026-03-02", datetime(2026, 3, 3, tzinfo=UTC), None),
        ("le2026-03-02", None, datetime(2026, 3, 3, tzinfo=UTC)),
        ("lt2026-03-02", None, datetime(2026, 3, 2, tzinfo=UTC)),
    ],
)
def test_date_prefixes_bound_the_recorded_instant(
    value: str, since: datetime | None, until: datetime | None
) -> None:
    search = _parse(("date", value))
    assert (search.since, search.until) == (since, until)


def test_several_dates_narrow_the_period() -> None:
    search = _parse(("date", "ge2026-01-01"), ("date", "lt2026-02-01"), ("date", "ge2026-01-15"))
    assert search.since == datetime(2026, 1, 15, tzinfo=UTC)
    assert search.until == datetime(2026, 2, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "pair",
    [
        ("date", "ne2026-01-01"),
        ("date", "yesterday"),
        ("patient", "Practitioner/bo"),
        ("patient", "a,b"),
        ("_count", "-1"),
        ("_cursor", "abc"),
        ("action", "R"),
    ],
)
def test_what_the_log_cannot_answer_is_a_400(pair: tuple[str, str]) -> None:
    with pytest.raises(FhirError) as raised:
        _parse(pair)
    assert raised.value.status == 400


def test_unknown_parameters_are_ignored_when_lenient() -> None:
    assert _parse(("action", "R"), lenient=True).kept == ()


def test_count_is_capped_and_links_keep_the_query() -> None:
    search = _parse(("patient", "anna"), ("_count", "500"), ("_cursor", "9"))
    assert search.count == 100
    assert search.before_seq == 9
    bundle = searchset([], search, base_url=BASE, has_more=False, total=0)
    assert bundle["link"] == [
        {"relation": "self", "url": f"{BASE}/AuditEvent?patient=anna&_count=500&_cursor=9"}
    ]
    assert bundle["total"] == 0 and bundle["entry"] == []
