"""Typed search values as a client writes them: https://hl7.org/fhir/R4/search.html#ptypes

Pure parsing of one value (after the comma split) into what the SQL compiler needs:
tokens, date ranges, numbers with their implied precision, quantities, references.
Malformed values raise `invalid` naming the parameter. Dates are read by
health.fhir.search.dates, as the extractor reads them at write time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from health.fhir.errors import invalid
from health.fhir.search.dates import date_range

# https://hl7.org/fhir/R4/search.html#prefix
PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
# `ap` is "approximately": the search range is widened on each side by 10% of the gap
# between the value and now (the spec's recommendation), and by at least a day for
# dates, so that `ap` on today's date still means "around today".
APPROXIMATE_FRACTION = 0.1
APPROXIMATE_MINIMUM = timedelta(days=1)
_EARLIEST = datetime.min.replace(tzinfo=UTC)
_LATEST = datetime.max.replace(tzinfo=UTC)

_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_TYPED_REFERENCE = re.compile(
    r"(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})(/_history/.+)?"
)


@dataclass(frozen=True, order=True)
class Token:
    """A token value: `system|code`, `|code` (no system), `code` or `system|`."""

    system: str | None
    code: str | None
    # True when the value named the system position (even empty, as in `|code`).
    system_given: bool


@dataclass(frozen=True)
class DateValue:
    """A date search value: the prefix and the range [low, high) its precision covers."""

    prefix: str
    low: datetime
    high: datetime


@dataclass(frozen=True)
class NumberValue:
    """A number: the prefix, the value, and the range [low, high) its precision implies.

    `100` stands for [99.5, 100.5) and `100.00` for [99.995, 100.005):
    https://hl7.org/fhir/R4/search.html#number
    """

    prefix: str
    value: float
    low: float
    high: float


@dataclass(frozen=True)
class QuantityValue:
    """`[prefix]number|system|code`, `number||code` (code or unit), or `number`."""

    number: NumberValue
    system: str | None
    code: str | None


@dataclass(frozen=True)
class ReferenceValue:
    """A local reference (type and/or id), or any other reference by its URL."""

    resource_type: str | None
    id: str | None
    url: str | None = None


def split_escaped(text: str, separator: str) -> list[str]:
    """Split on `separator` where it is not escaped by `\\`; escapes are kept."""
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            current.append(char)
            escaped = True
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


# https://hl7.org/fhir/R4/search.html#escaping
_ESCAPED = frozenset(",|$\\")


def escape(text: str) -> str:
    """A literal as a search parameter value: `,` `|` `$` `\\` escaped (unescape's inverse)."""
    return "".join(f"\\{char}" if char in _ESCAPED else char for char in text)


def unescape(text: str) -> str:
    """`\\,` `\\|` `\\$` `\\\\` to the characters they stand for."""
    out: list[str] = []
    escaped = False
    for char in text:
        if escaped or char != "\\":
            out.append(char)
            escaped = False
        else:
            escaped = True
    return "".join(out)


def parse_token(raw: str) -> Token:
    parts = split_escaped(raw, "|")
    if len(parts) == 1:
        return Token(system=None, code=unescape(parts[0]), system_given=False)
    system, code = unescape(parts[0]), unescape("|".join(parts[1:]))
    return Token(system=system or None, code=code or None, system_given=True)


def split_prefix(raw: str) -> tuple[str, str]:
    if len(raw) > 2 and raw[:2] in PREFIXES and not raw[2].isalpha():
        return raw[:2], raw[2:]
    return "eq", raw


def parse_date(raw: str, where: str) -> DateValue:
    """`[prefix]date`: the range a date, dateTime or instant covers at its precision.

    A time without a zone is read as UTC (the spec leaves it to the server). A space
    is read as `+`: a zone offset whose `+` a client forgot to percent-encode.
    """
    prefix, text = split_prefix(raw)
    text = text.replace(" ", "+")
    found = date_range(text)
    if found is None:
        raise invalid(f"'{text}' is not a FHIR date, dateTime or instant", where)
    return DateValue(prefix, found[0], found[1])


def approximate_window(value: DateValue, now: datetime) -> tuple[datetime, datetime]:
    """The range `ap` searches: the value's range widened by 10% of its gap to now."""
    gap = abs(now - value.low)
    margin = max(gap * APPROXIMATE_FRACTION, APPROXIMATE_MINIMUM)
    # Widened only as far as a datetime goes: `ap9999` or `ap0001` would pass it.
    low = value.low - margin if value.low - _EARLIEST > margin else _EARLIEST
    high = value.high + margin if _LATEST - value.high > margin else _LATEST
    return low, high


def parse_number(raw: str, where: str) -> NumberValue:
    prefix, text = split_prefix(raw)
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise invalid(f"'{text}' is not a number", where) from None
    if not number.is_finite():
        raise invalid(f"'{text}' is not a finite number", where)
    exponent = number.as_tuple().exponent
    assert isinstance(exponent, int)
    half = Decimal(5).scaleb(exponent - 1)
    return NumberValue(prefix, float(number), float(number - half), float(number + half))


def parse_quantity(raw: str, where: str) -> QuantityValue:
    parts = [unescape(p) for p in split_escaped(raw, "|")]
    if len(parts) not in (1, 3):
        raise invalid(f"'{raw}' is not a quantity (number|system|code)", where)
    number = parse_number(parts[0], where)
    if len(parts) == 1:
        return QuantityValue(number, None, None)
    return QuantityValue(number, parts[1] or None, parts[2] or None)


def parse_reference(raw: str, base_url: str, where: str) -> ReferenceValue:
    """`Type/id`, `id`, an absolute URL on this server's base, or any other URL."""
    text = unescape(raw)
    if text.startswith(f"{base_url}/"):
        text = text[len(base_url) + 1 :]
    typed = _TYPED_REFERENCE.fullmatch(text)
    if typed:
        return ReferenceValue(typed["type"], typed["id"])
    if _ID.fullmatch(text):
        return ReferenceValue(None, text)
    if ":" in text:
        return ReferenceValue(None, None, text)
    raise invalid(f"'{raw}' is not a reference (Type/id, id or an absolute URL)", where)
