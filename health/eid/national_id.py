"""National person numbers the development eID accepts: Danish CPR and Dutch BSN.

Pure functions, no I/O. The check is syntactic, as a test eID's should be: any number
that could exist is accepted, whether or not anyone holds it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

_CPR = re.compile(r"(\d{2})(\d{2})(\d{2})-?(\d{4})")
_BSN = re.compile(r"\d{9}")


class InvalidNationalId(ValueError):
    """The text is not a CPR or BSN number; the message says why, for the login form."""


@dataclass(frozen=True)
class NationalId:
    value: str  # digits only, no separator
    kind: str  # "cpr" or "bsn"
    # Known from a CPR number's first six digits and its century digit; a BSN says nothing.
    birth_date: date | None


def parse_national_id(text: str) -> NationalId:
    """A CPR (`DDMMYYSSSS`, optionally `DDMMYY-SSSS`) or BSN (9 digits) number, checked."""
    candidate = text.strip().replace(" ", "")
    if not candidate:
        raise InvalidNationalId("Enter a national ID number (CPR: 10 digits, BSN: 9 digits).")
    if _BSN.fullmatch(candidate):
        if not _bsn_eleven_proof(candidate):
            raise InvalidNationalId(
                f"{candidate} is not a valid BSN: it fails the eleven-proof check digit."
            )
        return NationalId(candidate, "bsn", None)
    match = _CPR.fullmatch(candidate)
    if match is None:
        raise InvalidNationalId(
            "A national ID is a CPR number, 10 digits DDMMYYSSSS (e.g. 1406580991), "
            "or a BSN, 9 digits."
        )
    digits = "".join(match.groups())
    birth_date = cpr_birth_date(digits)
    if birth_date is None:
        raise InvalidNationalId(
            f"{candidate} is not a valid CPR number: its first six digits are not a date (DDMMYY)."
        )
    return NationalId(digits, "cpr", birth_date)


def cpr_birth_date(cpr: str) -> date | None:
    """The birth date in a 10-digit CPR number, or None when DDMMYY is not a date.

    The century follows from YY and the seventh digit, as the CPR office defines it
    (https://cpr.dk/cpr-systemet/opbygning-af-cpr-nummeret). The modulus-11 check is not
    applied: numbers without it have been issued since 2007.
    """
    day, month, year, century_digit = int(cpr[0:2]), int(cpr[2:4]), int(cpr[4:6]), int(cpr[6])
    if century_digit <= 3:
        century = 1900
    elif century_digit in (4, 9):
        century = 2000 if year <= 36 else 1900
    else:
        century = 2000 if year <= 57 else 1800
    try:
        return date(century + year, month, day)
    except ValueError:
        return None


def _bsn_eleven_proof(bsn: str) -> bool:
    """The BSN check: weights 9..2 and -1 sum to a multiple of 11 (and not all zeros)."""
    weights = (9, 8, 7, 6, 5, 4, 3, 2, -1)
    total = sum(int(digit) * weight for digit, weight in zip(bsn, weights, strict=True))
    return total % 11 == 0 and bsn != "000000000"
