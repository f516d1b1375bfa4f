"""A search's shape and values: one pass over a SearchRequest, in plain Python.

health/db/search_sql.py builds a search's clauses once per process for each shape of
search and binds each request's values (its module docstring says why). This pass makes
both: the shape (resource type, parameters, modifiers, prefixes, how many values, which
of system and code a token gives, sort keys, ...), and the values, every derived value
(date range ends, LIKE patterns, number margins, the `ap` window around now, prefix
ends) computed here and only here, each in a numbered slot that the shape names, so
that a clause and its values can never disagree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from health.fhir.search.params import Condition, Has, SearchRequest
from health.fhir.search.values import (
    APPROXIMATE_FRACTION,
    DateValue,
    NumberValue,
    QuantityValue,
    ReferenceValue,
    Token,
    approximate_window,
)

# A plain tuple of strings, numbers, booleans, None and slot numbers: see `Plan`.
Shape = tuple[Any, ...]
# In a token's shape: the value said `|code`, no system.
NO_SYSTEM = "no system"


class Plan:
    """One pass over a request: its shape, and the values the shape's slots name."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.values: list[Any] = []
        # False when the search has a chain or `_has`, whose aliases are scoped per
        # request: it is then built per request (health/db/search_sql.py).
        self.cacheable = True

    def slot(self, value: Any) -> int:
        self.values.append(value)
        return len(self.values) - 1

    def request(self, request: SearchRequest) -> Shape:
        patient = None if request.patient is None else self.slot(request.patient)
        conditions = tuple(self.condition(c) for c in request.conditions)
        sort = tuple((s.param, s.type, s.descending) for s in request.sort)
        return (request.resource_type, patient, conditions, sort)

    def condition(self, condition: Condition | Has) -> Shape:
        if isinstance(condition, Has):
            self.cacheable = False
            nested = self.condition(condition.condition)
            return ("has", condition.source_type, condition.reference_param, nested)
        if condition.type == "id":
            return ("id", self.slot([str(v) for v in condition.values]))
        if condition.type == "lastUpdated":
            return ("lastUpdated", tuple(self.date(v) for v in condition.values))
        if condition.chain is not None:
            self.cacheable = False
            chain = condition.chain
            per_target = tuple((t, self.condition(chain)) for t in condition.target_types)
            return ("chain", condition.param, per_target)
        if condition.modifier == "missing":
            return ("missing", condition.type, condition.param, bool(condition.values[0]))
        values = tuple(self.value(condition, v) for v in condition.values)
        return ("rows", condition.type, condition.param, condition.modifier, values)

    def value(self, condition: Condition, value: Any) -> Shape:
        kind, modifier = condition.type, condition.modifier
        if kind == "token":
            if modifier == "text":
                # The display or text starts with the value, or one of its words does.
                escaped = escape_like(value)
                return ("text", self.slot(escaped + "%"), self.slot("% " + escaped + "%"))
            return self.token(value)
        if kind == "string":
            if modifier == "exact":
                return ("exact", self.slot(value))
            if modifier == "contains":
                return ("contains", self.slot("%" + escape_like(value) + "%"))
            end = prefix_end(value)
            return ("prefix", self.slot(value), None if end is None else self.slot(end))
        if kind == "date":
            return self.date(value)
        if kind == "number":
            return self.number(value)
        if kind == "quantity":
            return self.quantity(value)
        if kind == "reference":
            return self.reference(value, condition.target_types)
        return ("uri", self.slot(value))

    def token(self, token: Token) -> Shape:
        code = None if token.code is None else self.slot(token.code)
        system: int | str | None = None
        if token.system_given:
            system = NO_SYSTEM if token.system is None else self.slot(token.system)
        return ("token", code, system)

    def date(self, value: DateValue) -> Shape:
        """The prefix, and the ends of the searched range (for `ap`, its window)."""
        if value.prefix == "ap":
            low, high = approximate_window(value, self.now)
        else:
            low, high = value.low, value.high
        return ("date", value.prefix, self.slot(low), self.slot(high))

    def number(self, number: NumberValue) -> Shape:
        """The prefix and its bounds: eq and ne use the precision the value implies."""
        prefix, value = number.prefix, number.value
        if prefix in ("eq", "ne"):
            return ("number", prefix, self.slot(number.low), self.slot(number.high))
        if prefix == "ap":
            margin = abs(value) * APPROXIMATE_FRACTION
            low, high = min(number.low, value - margin), max(number.high, value + margin)
            return ("number", prefix, self.slot(low), self.slot(high))
        return ("number", prefix, self.slot(value), None)

    def quantity(self, quantity: QuantityValue) -> Shape:
        system = None if quantity.system is None else self.slot(quantity.system)
        code = None if quantity.code is None else self.slot(quantity.code)
        return ("quantity", self.number(quantity.number), system, code)

    def reference(self, reference: ReferenceValue, target_types: tuple[str, ...]) -> Shape:
        if reference.url is not None:
            return ("url", self.slot(reference.url))
        target_type = reference.resource_type or (target_types[0] if target_types else None)
        typed = None if target_type is None else self.slot(target_type)
        return ("reference", self.slot(reference.id), typed)


# The highest code point, and the UTF-16 surrogates (no stored text holds one).
_LAST_CODE_POINT = chr(0x10FFFF)
_SURROGATES = range(0xD800, 0xE000)


def prefix_end(prefix: str) -> str | None:
    """The least string after every string that starts with `prefix`, in code point
    order; None if there is none (an empty prefix, or one of only U+10FFFF)."""
    stem = prefix.rstrip(_LAST_CODE_POINT)
    if not stem:
        return None
    following = ord(stem[-1]) + 1
    if following in _SURROGATES:
        following = _SURROGATES.stop
    return stem[:-1] + chr(following)


def escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
