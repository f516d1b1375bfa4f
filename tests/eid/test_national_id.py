"""The national ID check of the development eID's login form: CPR and BSN."""

from __future__ import annotations

from datetime import date

import pytest

from health.eid.national_id import InvalidNationalId, parse_national_id
from health.seed import demo_persons


@pytest.mark.parametrize(
    ("typed", "value", "born"),
    [
        ("1406580991", "1406580991", date(1958, 6, 14)),  # seventh digit 0: the 1900s
        ("140658-0991", "1406580991", date(1958, 6, 14)),
        (" 0905164990 ", "0905164990", date(2016, 5, 9)),  # 4 and year <= 36: the 2000s
        ("0101404990", "0101404990", date(1940, 1, 1)),  # 4 and year > 36: the 1900s
        ("0101575000", "0101575000", date(2057, 1, 1)),  # 5-8 and year <= 57: the 2000s
        ("0101585000", "0101585000", date(1858, 1, 1)),  # 5-8 and year > 57: the 1800s
        ("2902009990", "2902009990", date(2000, 2, 29)),
    ],
)
def test_cpr_numbers_give_their_birth_date(typed: str, value: str, born: date) -> None:
    parsed = parse_national_id(typed)
    assert (parsed.kind, parsed.value, parsed.birth_date) == ("cpr", value, born)


def test_every_seeded_person_can_log_in() -> None:
    for person in demo_persons():
        assert parse_national_id(person.national_id).value == person.national_id


def test_bsn_needs_the_eleven_proof() -> None:
    assert parse_national_id("111222333").kind == "bsn"
    assert parse_national_id("111222333").birth_date is None
    for bad in ("111222334", "000000000"):
        with pytest.raises(InvalidNationalId, match="BSN"):
            parse_national_id(bad)


@pytest.mark.parametrize("typed", ["", "   ", "abc", "12345678901", "2902019990", "3113581234"])
def test_malformed_numbers_are_refused_with_a_reason(typed: str) -> None:
    with pytest.raises(InvalidNationalId) as refused:
        parse_national_id(typed)
    assert str(refused.value)
