"""A search request, parsed: https://hl7.org/fhir/R4/search.html

Pure: a resource type and the percent-decoded (name, value) pairs in, a typed
`SearchRequest` out. A repeated parameter is a further condition (AND); commas within
one value are alternatives (OR), `\\,` escapes a comma. Unknown parameters and
unsupported modifiers are refused with a 400 naming them, or, when the client asked for
`Prefer: handling=lenient`, ignored and left out of the self link
(https://hl7.org/fhir/R4/search.html#errors). Malformed values are refused either way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from health.fhir.content import elements_list, summary_mode
from health.fhir.errors import FhirError, invalid, not_supported
from health.fhir.json_shape import NUL
from health.fhir.search.definitions import SearchDefinitions, SearchParameter
from health.fhir.search.includes import Include
from health.fhir.search.normalise import normalise
from health.fhir.search.values import (
    Token,
    parse_date,
    parse_number,
    parse_quantity,
    parse_reference,
    parse_token,
    split_escaped,
    unescape,
)
from health.numbers import page_count

# The paging cursor this server puts in `next` and `previous` links: opaque to clients.
CURSOR = "_cursor"
# Handled by the HTTP layer (format negotiation, pretty printing): not search inputs.
FORMAT_PARAMETERS = frozenset({"_format", "_pretty"})
TOTAL_MODES = ("none", "estimate", "accurate")
# Parameters on columns of the resource table rather than on the index.
ID = "_id"
LAST_UPDATED = "_lastUpdated"
IDENTIFIER = "identifier"
SORTABLE_TYPES = frozenset({"token", "string", "date", "number", "quantity", "uri"})
_MODIFIERS = {
    "token": frozenset({"missing", "not", "text", "of-type"}),
    "string": frozenset({"missing", "exact", "contains"}),
    "date": frozenset({"missing"}),
    "number": frozenset({"missing"}),
    "quantity": frozenset({"missing"}),
    "uri": frozenset({"missing"}),
    "reference": frozenset({"missing"}),
}


@dataclass(frozen=True)
class Condition:
    """One parameter as written once: its values are alternatives (OR).

    `type` is the parameter type, or "id" / "lastUpdated" for the resource columns.
    `values` are typed per type (Token, str, DateValue, NumberValue, QuantityValue,
    ReferenceValue), or (True,) / (False,) for `:missing`. `target_types` holds a
    reference's `:Type` modifier, or the types a chain searches; `chain` is the
    condition on the referenced resources (`subject:Patient.identifier=...`).
    """

    param: str
    type: str
    values: tuple[Any, ...]
    modifier: str | None = None
    target_types: tuple[str, ...] = ()
    chain: Condition | None = None


@dataclass(frozen=True)
class Has:
    """`_has:Source:reference:condition`: resources some Source refers to by `reference`."""

    source_type: str
    reference_param: str
    condition: Condition


@dataclass(frozen=True)
class SortKey:
    param: str
    type: str
    descending: bool = False


@dataclass(frozen=True)
class SearchRequest:
    resource_type: str
    conditions: tuple[Condition | Has, ...] = ()
    count: int = 50
    sort: tuple[SortKey, ...] = ()
    total: str = "accurate"
    # None for the whole resource (absent or `_summary=false`).
    summary: str | None = None
    elements: tuple[str, ...] | None = None
    includes: tuple[Include, ...] = ()
    cursor: str | None = None
    # The pairs the search was understood as (for the self link; no cursor).
    accepted: tuple[tuple[str, str], ...] = ()
    # Names ignored under lenient handling.
    ignored: tuple[str, ...] = field(default=())
    # Set when a condition implies that every match lies in this patient's compartment
    # (health/fhir/search/scope.py): the SQL can then narrow by patient first.
    patient: str | None = None


@dataclass(frozen=True)
class SearchLimits:
    default_count: int
    max_count: int


def parse_search(
    resource_type: str,
    pairs: list[tuple[str, str]],
    definitions: SearchDefinitions,
    *,
    base_url: str,
    limits: SearchLimits,
    lenient: bool = False,
    where: str = "",
) -> SearchRequest:
    """The typed request; `where` locates errors (a Bundle entry) instead of the name."""
    parser = _Parser(resource_type, definitions, base_url, where)
    conditions: list[Condition | Has] = []
    accepted: list[tuple[str, str]] = []
    ignored: list[str] = []
    result: dict[str, Any] = {"count": limits.default_count}
    includes: list[Include] = []
    for name, value in pairs:
        if NUL in name or NUL in value:
            # PostgreSQL's text cannot hold it, nor can any FHIR value (XML has no
            # representation for it): no resource could match.
            shown = name.replace(NUL, "\\0")
            raise invalid(
                f"Search parameter '{shown}' holds the character U+0000 (NUL), "
                "which no FHIR value may contain",
                parser.at(shown),
            )
        try:
            if name in FORMAT_PARAMETERS:
                pass
            elif name == CURSOR:
                result["cursor"] = value
                continue
            elif name == "_count":
                result["count"] = _count(value, limits.max_count, parser.at(name))
            elif name == "_total":
                if value not in TOTAL_MODES:
                    raise invalid(f"_total={value} is not one of {', '.join(TOTAL_MODES)}", name)
                result["total"] = value
            elif name == "_summary":
                result["summary"] = summary_mode(value, allow_count=True)
            elif name == "_elements":
                result["elements"] = tuple(elements_list(value) or ())
            elif name == "_sort":
                if "sort" in result:
                    raise invalid("_sort may be given once (list several keys with commas)", name)
                result["sort"] = tuple(parser.sort_key(key) for key in value.split(",") if key)
            elif name.split(":")[0] in ("_include", "_revinclude"):
                includes.extend(parser.include(name, v) for v in value.split(","))
            else:
                conditions.append(parser.condition(name, value))
        except FhirError as error:
            if lenient and all(issue.code == "not-supported" for issue in error.issues):
                ignored.append(name)
                continue
            raise
        accepted.append((name, value))
    return SearchRequest(
        resource_type=resource_type,
        conditions=tuple(conditions),
        includes=tuple(includes),
        accepted=tuple(accepted),
        ignored=tuple(ignored),
        **result,
    )


def supported_parameters(
    resource_type: str, definitions: SearchDefinitions, *, has_identifier: bool
) -> list[tuple[str, str]]:
    """(code, type) of every search parameter the parser accepts for a type."""
    supported = [(ID, "token"), (LAST_UPDATED, "date")]
    parameters = definitions.for_type(resource_type)
    for code, definition in sorted(parameters.items()):
        if code not in (ID, LAST_UPDATED) and definition.type in _MODIFIERS:
            supported.append((code, definition.type))
    if has_identifier and resource_type not in definitions.indexed_types:
        supported.append((IDENTIFIER, "token"))
    return supported


def _count(value: str, maximum: int, where: str) -> int:
    size = page_count(value, maximum=maximum)
    if size is None:
        raise invalid(f"_count={value!r} is not a non-negative whole number", where)
    return size


class _Parser:
    def __init__(
        self, resource_type: str, definitions: SearchDefinitions, base_url: str, where: str
    ) -> None:
        self.resource_type = resource_type
        self.definitions = definitions
        self.base_url = base_url
        self.where = where

    def at(self, name: str) -> str:
        return self.where or f"{self.resource_type}?{name}"

    def parameter(self, resource_type: str, code: str, name: str) -> tuple[str, tuple[str, ...]]:
        """The type of a parameter of `resource_type` and its reference targets."""
        if code == ID:
            return "id", ()
        if code == LAST_UPDATED:
            return "lastUpdated", ()
        definition: SearchParameter | None = self.definitions.get(resource_type, code)
        # Types without definitions still index their identifiers (the extractor's
        # default), which conditional writes match on for every type.
        if code == IDENTIFIER and resource_type not in self.definitions.indexed_types:
            return "token", ()
        if definition is None:
            known = ", ".join(sorted(self.definitions.for_type(resource_type))) or "_id"
            raise not_supported(
                f"Search parameter '{code}' is not supported for {resource_type} "
                f"(supported: {known})",
                self.at(name),
            )
        if definition.type not in _MODIFIERS:
            raise not_supported(
                f"Search parameter '{code}' of type {definition.type} is not supported",
                self.at(name),
            )
        return definition.type, definition.targets

    def condition(self, name: str, value: str) -> Condition | Has:
        if name.startswith("_has:"):
            return self.has(name, value)
        head, dot, rest = name.partition(".")
        if dot:
            return self.chained(head, rest, value, name)
        return self.simple(self.resource_type, name, value, name)

    def simple(self, resource_type: str, text: str, value: str, name: str) -> Condition:
        code, _, modifier = text.partition(":")
        kind, targets = self.parameter(resource_type, code, name)
        target_types: tuple[str, ...] = ()
        if modifier and kind == "reference" and modifier[:1].isupper():
            if targets and modifier not in targets:
                raise invalid(
                    f"'{code}' of {resource_type} cannot refer to a {modifier} "
                    f"(it refers to {', '.join(targets)})",
                    self.at(name),
                )
            target_types, modifier = (modifier,), ""
        if modifier and (
            kind in ("id", "lastUpdated")
            or modifier not in _MODIFIERS[kind]
            or (modifier == "of-type" and code != IDENTIFIER)
        ):
            raise not_supported(
                f"Modifier ':{modifier}' is not supported on '{code}' ({kind})", self.at(name)
            )
        raw_values = [v for v in split_escaped(value, ",") if v != ""]
        if not raw_values:
            raise invalid(f"Search parameter '{name}' has no value", self.at(name))
        if modifier == "missing":
            if value not in ("true", "false"):
                raise invalid(f"{name}={value}: :missing takes true or false", self.at(name))
            return Condition(code, kind, (value == "true",), "missing")
        values = tuple(
            self.value(kind, modifier or None, raw, target_types, name) for raw in raw_values
        )
        return Condition(code, kind, values, modifier or None, target_types)

    def value(
        self, kind: str, modifier: str | None, raw: str, target_types: tuple[str, ...], name: str
    ) -> Any:
        where = self.at(name)
        if kind == "id" or kind == "uri":
            return unescape(raw)
        if kind in ("date", "lastUpdated"):
            return parse_date(raw, where)
        if kind == "number":
            return parse_number(raw, where)
        if kind == "quantity":
            return parse_quantity(raw, where)
        if kind == "string":
            return unescape(raw) if modifier == "exact" else normalise(unescape(raw))
        if kind == "reference":
            reference = parse_reference(raw, self.base_url, where)
            if target_types and reference.resource_type not in (None, target_types[0]):
                raise invalid(f"{name}={raw}: the reference is not to a {target_types[0]}", where)
            return reference
        # token
        if modifier == "text":
            return normalise(unescape(raw))
        if modifier == "of-type":
            parts = [unescape(p) for p in split_escaped(raw, "|")]
            if len(parts) != 3 or not all(parts):
                raise invalid(f"{name}={raw}: :of-type takes type-system|type-code|value", where)
            return Token(f"{parts[0]}|{parts[1]}", parts[2], True)
        token = parse_token(raw)
        if token.system is None and token.code is None:
            raise invalid(f"Search parameter '{name}' has an empty token", where)
        return token

    def chained(self, head: str, rest: str, value: str, name: str) -> Condition:
        """`subject:Patient.identifier=...` or `subject.name=...`: one level only."""
        code, _, type_modifier = head.partition(":")
        kind, targets = self.parameter(self.resource_type, code, name)
        if kind != "reference":
            raise invalid(
                f"'{code}' is not a reference parameter: it cannot be chained", self.at(name)
            )
        if "." in rest:
            raise not_supported(
                f"'{name}': chains of more than one level are not supported", self.at(name)
            )
        candidates = (type_modifier,) if type_modifier else targets
        if type_modifier and targets and type_modifier not in targets:
            raise invalid(
                f"'{code}' of {self.resource_type} cannot refer to a {type_modifier}",
                self.at(name),
            )
        chained_code = rest.partition(":")[0]
        usable = tuple(
            t
            for t in candidates
            if chained_code in (ID, LAST_UPDATED) or self.definitions.get(t, chained_code)
        )
        if not usable:
            raise not_supported(
                f"'{name}': no type '{code}' refers to has a parameter '{chained_code}'",
                self.at(name),
            )
        inner = self.simple(usable[0], rest, value, name)
        usable = tuple(t for t in usable if self._same_kind(t, chained_code, inner.type))
        return Condition(code, "reference", (), None, usable, inner)

    def _same_kind(self, resource_type: str, code: str, kind: str) -> bool:
        if code in (ID, LAST_UPDATED):
            return True
        definition = self.definitions.get(resource_type, code)
        return definition is not None and definition.type == kind

    def has(self, name: str, value: str) -> Has:
        """`_has:Observation:subject:code=...`: https://hl7.org/fhir/R4/search.html#has"""
        parts = name.split(":", 3)
        if len(parts) != 4 or not all(parts):
            raise invalid(f"'{name}' is not _has:Type:reference:parameter", self.at(name))
        _, source_type, reference, rest = parts
        if rest.startswith("_has"):
            raise not_supported(f"'{name}': nested _has is not supported", self.at(name))
        kind, targets = self.parameter(source_type, reference, name)
        if kind != "reference" or (targets and self.resource_type not in targets):
            raise invalid(
                f"'{reference}' of {source_type} is not a reference to {self.resource_type}",
                self.at(name),
            )
        if "." in rest:
            raise not_supported(f"'{name}': chaining inside _has is not supported", self.at(name))
        return Has(source_type, reference, self.simple(source_type, rest, value, name))

    def sort_key(self, key: str) -> SortKey:
        descending = key.startswith("-")
        code = key[1:] if descending else key
        kind, _ = self.parameter(self.resource_type, code, "_sort")
        if kind not in SORTABLE_TYPES and kind not in ("id", "lastUpdated"):
            raise not_supported(f"Sorting by '{code}' ({kind}) is not supported", self.at("_sort"))
        return SortKey(code, kind, descending)

    def include(self, name: str, value: str) -> Include:
        """`_include[:iterate]=Source:param[:Target]`, likewise `_revinclude`."""
        kind, _, qualifier = name.partition(":")
        if qualifier not in ("", "iterate", "recurse"):
            raise not_supported(f"'{name}' is not supported (use :iterate)", self.at(name))
        parts = value.split(":")
        if len(parts) not in (2, 3) or not all(parts):
            raise invalid(f"{name}={value} is not Source:parameter[:Target]", self.at(name))
        source, code = parts[0], parts[1]
        target = parts[2] if len(parts) == 3 else None
        reverse = kind == "_revinclude"
        iterate = bool(qualifier)
        if not reverse and not iterate and source != self.resource_type:
            raise invalid(
                f"{name}={value}: _include names the searched type ({self.resource_type})",
                self.at(name),
            )
        if code == "*":  # every reference parameter of the source type
            return Include(source, code, target, reverse=reverse, iterate=iterate)
        param_kind, targets = self.parameter(source, code, name)
        if param_kind != "reference":
            raise invalid(f"{name}={value}: '{code}' is not a reference parameter", self.at(name))
        if target is not None and targets and target not in targets:
            raise invalid(f"{name}={value}: '{code}' cannot refer to a {target}", self.at(name))
        return Include(source, code, target, reverse=reverse, iterate=iterate)
