"""Whole numbers from URLs and headers (health/numbers.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from health.numbers import INT32_DIGITS, INT64_DIGITS, page_count, whole_number


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("007", 7),
        ("2147483647", None),  # ten digits: past what INT32_DIGITS lets through
        ("999999999", 999_999_999),
        ("", None),
        ("-1", None),
        ("+1", None),
        (" 1", None),
        ("1.0", None),
        ("²", None),
        ("٣", None),
        ("\uff11", None),  # FULLWIDTH DIGIT ONE
    ],
)
def test_only_ascii_digits_within_the_width_are_a_number(text: str, expected: int | None) -> None:
    assert whole_number(text, max_digits=INT32_DIGITS) == expected


def test_a_64_bit_sequence_number_fits_and_one_more_digit_does_not() -> None:
    assert whole_number("9" * INT64_DIGITS, max_digits=INT64_DIGITS) == int("9" * INT64_DIGITS)
    assert whole_number("1" + "0" * INT64_DIGITS, max_digits=INT64_DIGITS) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0", 0), ("50", 50), ("1000", 100), ("9" * 5000, 100), ("0" * 5000 + "7", 7), ("²", None)],
)
def test_a_page_count_is_capped_however_long(text: str, expected: int | None) -> None:
    assert page_count(text, maximum=100) == expected


@given(st.text(max_size=30))
def test_anything_is_a_number_or_none_never_an_error(text: str) -> None:
    number = whole_number(text, max_digits=INT64_DIGITS)
    count = page_count(text, maximum=500)

    assert number is None or str(number) == (text.lstrip("0") or "0")
    assert count is None or 0 <= count <= 500
