"""Search criteria for conditional interactions and simple searches.

https://hl7.org/fhir/R4/search.html. This module parses a query into criteria the
repository can turn into SQL. It knows `_id` and the token parameter `identifier`,
which is what conditional create, update, delete and conditional references use in
practice; any other parameter is refused with a clear 400 rather than ignored, since an
ignored criterion would make a conditional write match the wrong resource.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl

from health.fhir.errors import invalid, not_supported

# Result parameters are not criteria: https://hl7.org/fhir/R4/search.html#return
RESULT_PARAMETERS = frozenset(
    {
        "_count",
        "_sort",
        "_total",
        "_summary",
        "_elements",
        "_include",
        "_revinclude",
        "_contained",
        "_containedType",
        "_format",
        "_pretty",
    }
)
SUPPORTED_PARAMETERS = ("_id", "identifier")
_UNESCAPED_COMMA = re.compile(r"(?<!\\),")
_UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


@dataclass(frozen=True, order=True)
class Token:
    """A token value: `system|code`, `|code` (no system), `code` or `system|`."""

    system: str | None
    code: str | None
    # True when the value named the system position (even empty, as in `|code`).
    system_given: bool


@dataclass(frozen=True, order=True)
class Criterion:
    param: str
    values: tuple[str | Token, ...]


def _unescape(value: str) -> str:
    return value.replace("\\,", ",").replace("\\|", "|").replace("\\$", "$").replace("\\\\", "\\")


def parse_token(raw: str) -> Token:
    parts = _UNESCAPED_PIPE.split(raw, maxsplit=1)
    if len(parts) == 1:
        return Token(system=None, code=_unescape(parts[0]), system_given=False)
    system, code = (_unescape(p) for p in parts)
    return Token(system=system or None, code=code or None, system_given=True)


def parse_query(query: str) -> list[tuple[str, str]]:
    """Percent-decoded name/value pairs of a query string, in order."""
    return parse_qsl(query, keep_blank_values=True)


def parse_criteria(
    resource_type: str, pairs: list[tuple[str, str]], where: str = ""
) -> list[Criterion]:
    """Criteria from query pairs; repeated parameters are ANDed, commas ORed."""
    criteria: list[Criterion] = []
    for name, value in pairs:
        location = where or f"{resource_type}?{name}"
        if name in RESULT_PARAMETERS:
            continue
        param, _, modifier = name.partition(":")
        if param not in SUPPORTED_PARAMETERS:
            raise not_supported(
                f"Search parameter '{name}' is not supported for {resource_type} "
                f"(supported: {', '.join(SUPPORTED_PARAMETERS)})",
                location,
            )
        if modifier:
            raise not_supported(f"Modifier ':{modifier}' is not supported on {param}", location)
        raw_values = [v for v in _UNESCAPED_COMMA.split(value) if v != ""]
        if not raw_values:
            raise invalid(f"Search parameter '{name}' has no value", location)
        if param == "_id":
            criteria.append(Criterion(param, tuple(sorted(_unescape(v) for v in raw_values))))
        else:
            tokens = tuple(sorted(parse_token(v) for v in raw_values))
            if any(t.code is None and t.system is None for t in tokens):
                raise invalid(f"Search parameter '{name}' has an empty token", location)
            criteria.append(Criterion(param, tokens))
    return sorted(criteria)


def require_criteria(criteria: list[Criterion], what: str) -> None:
    if not criteria:
        raise invalid(f"{what} needs at least one search criterion")


def criteria_hash(resource_type: str, criteria: list[Criterion]) -> str:
    """A stable key for equivalent criteria (order and encoding do not matter)."""
    canonical = repr((resource_type, sorted(criteria)))
    return hashlib.sha256(canonical.encode()).hexdigest()
