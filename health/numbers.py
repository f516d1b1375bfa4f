"""Whole numbers as clients write them in URLs and headers: `_count`, cursors, version ids.

`str.isdigit` is not the test: it is true of "²" and "٣" too, which `int` then refuses
(the one) or reads as 3 (the other), and `int` refuses more than 4,300 digits. A number
the database cannot hold (a version id past a 32-bit integer, a sequence number past
64 bits) would be refused there, as an error of the server's.
"""

from __future__ import annotations

# The widest numbers the database's columns hold, in decimal digits: a version id is a
# 32-bit integer, a sequence number (the write order, the access log's) 64-bit.
INT32_DIGITS = 9
INT64_DIGITS = 18
_ASCII_DIGITS = frozenset("0123456789")


def whole_number(text: str, *, max_digits: int) -> int | None:
    """`text` as a non-negative whole number of ASCII digits, at most `max_digits` of
    them; None for anything else."""
    if not text or len(text) > max_digits or not _ASCII_DIGITS.issuperset(text):
        return None
    return int(text)


def page_count(text: str, *, maximum: int) -> int | None:
    """A `_count`: a non-negative whole number of ASCII digits, capped at `maximum`
    however many digits it has; None for anything else."""
    if not text or not _ASCII_DIGITS.issuperset(text):
        return None
    digits = text.lstrip("0") or "0"
    return maximum if len(digits) > len(str(maximum)) else min(int(digits), maximum)
