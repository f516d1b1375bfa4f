"""Criteria of conditional interactions: If-None-Exist, conditional update and delete,
conditional references.

https://hl7.org/fhir/R4/http.html#ccreate. The condition is a search
(health.fhir.search.params, the full criteria language) and is parsed strictly: an
unknown parameter is refused with a 400 rather than ignored, since an ignored criterion
would make a conditional write match the wrong resource. Conditions on `_id` and
`identifier` alone, which is what conditional writes use in practice, also become
`Criterion`s for the repository's token-first lookup (Repository.match).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qsl

from health.fhir.errors import invalid
from health.fhir.search.definitions import SearchDefinitions
from health.fhir.search.params import Condition, Has, SearchLimits, SearchRequest, parse_search
from health.fhir.search.values import Token

__all__ = ["Criterion", "Token"]
# Conditional writes decide between 0, 1 and "more": paging limits do not apply.
_LIMITS = SearchLimits(default_count=2, max_count=2)


@dataclass(frozen=True, order=True)
class Criterion:
    param: str
    values: tuple[str | Token, ...]


def parse_query(query: str) -> list[tuple[str, str]]:
    """Percent-decoded name/value pairs of a query string, in order."""
    return parse_qsl(query, keep_blank_values=True)


def parse_condition(
    resource_type: str,
    query: str,
    definitions: SearchDefinitions,
    *,
    base_url: str,
    where: str = "",
) -> SearchRequest:
    """A conditional interaction's criteria (`Type?criteria` without the `Type?`)."""
    request = parse_search(
        resource_type,
        parse_query(query.lstrip("?")),
        definitions,
        base_url=base_url,
        limits=_LIMITS,
        where=where,
    )
    # Only matching counts: no totals, no order beyond the id.
    return replace(request, total="none", sort=(), includes=(), cursor=None)


def fast_criteria(request: SearchRequest) -> list[Criterion] | None:
    """The `_id` and plain `identifier` conditions as Criteria, or None for anything else."""
    criteria: list[Criterion] = []
    for condition in request.conditions:
        if not isinstance(condition, Condition) or condition.modifier or condition.chain:
            return None
        if condition.type == "id" or (
            condition.param == "identifier" and condition.type == "token"
        ):
            criteria.append(Criterion(condition.param, tuple(sorted(condition.values, key=repr))))
        else:
            return None
    return sorted(criteria, key=repr)


def single_identifier(criteria: list[Criterion] | None) -> tuple[str, str] | None:
    """(system, value) of a condition that is one `identifier=system|value` and nothing
    else (how a push names a directory entry or a citizen), or None."""
    if criteria is None or len(criteria) != 1:
        return None
    (criterion,) = criteria
    if criterion.param != "identifier" or len(criterion.values) != 1:
        return None
    (token,) = criterion.values
    if not isinstance(token, Token) or token.system is None or token.code is None:
        return None
    return token.system, token.code


def require_criteria(request: SearchRequest, what: str) -> None:
    if not request.conditions:
        raise invalid(f"{what} needs at least one search criterion")


def criteria_hash(resource_type: str, request: SearchRequest) -> str:
    """A stable key for equivalent criteria (order and encoding do not matter)."""
    canonical = repr((resource_type, sorted(repr(_canonical(c)) for c in request.conditions)))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _canonical(condition: Condition | Has | None) -> Any:
    if condition is None:
        return None
    if isinstance(condition, Has):
        return (
            "_has",
            condition.source_type,
            condition.reference_param,
            _canonical(condition.condition),
        )
    return (
        condition.param,
        condition.type,
        condition.modifier or "",
        condition.target_types,
        sorted(repr(v) for v in condition.values),
        repr(_canonical(condition.chain)),
    )
