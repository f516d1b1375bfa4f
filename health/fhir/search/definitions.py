"""Search parameter definitions, loaded from fhir/search-parameters.json."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import orjson

# Parameters every resource type has (base Resource/DomainResource in the definitions).
COMMON_BASES = ("Resource", "DomainResource")


@dataclass(frozen=True)
class SearchParameter:
    """One search parameter as it applies to one resource type."""

    code: str
    # token | string | date | reference | quantity | number | uri
    type: str
    resource_type: str
    # The FHIRPath expression for this resource type (the `|` alternatives of the
    # definition that start with this type, or with Resource/DomainResource).
    expression: str
    # For reference parameters: the resource types the reference may point to.
    targets: tuple[str, ...] = ()


class SearchDefinitions:
    """Every search parameter per resource type."""

    def __init__(self, conformance_dir: Path) -> None:
        document = orjson.loads((conformance_dir / "search-parameters.json").read_bytes())
        self.indexed_types: tuple[str, ...] = tuple(document["resource_types"])
        self._by_type: dict[str, dict[str, SearchParameter]] = {}
        common: list[dict[str, object]] = []
        for definition in document["parameters"]:
            bases = definition["base"]
            if any(base in COMMON_BASES for base in bases):
                common.append(definition)
            for base in bases:
                if base not in COMMON_BASES:
                    self._add(base, definition)
        for resource_type in self.indexed_types:
            for definition in common:
                self._add(resource_type, definition)

    def _add(self, resource_type: str, definition: dict[str, object]) -> None:
        expression = _expression_for(str(definition["expression"]), resource_type)
        if not expression:
            return
        parameter = SearchParameter(
            code=str(definition["code"]),
            type=str(definition["type"]),
            resource_type=resource_type,
            expression=expression,
            targets=tuple(definition.get("target", ())),  # type: ignore[arg-type]
        )
        self._by_type.setdefault(resource_type, {})[parameter.code] = parameter

    def for_type(self, resource_type: str) -> dict[str, SearchParameter]:
        """The parameters of a type by code (empty for a type that is not indexed)."""
        return self._by_type.get(resource_type, {})

    def get(self, resource_type: str, code: str) -> SearchParameter | None:
        return self._by_type.get(resource_type, {}).get(code)


def _expression_for(expression: str, resource_type: str) -> str:
    """The alternatives of a shared expression that apply to `resource_type`.

    Definitions shared by several types join one path per type with `|`, e.g.
    `AllergyIntolerance.patient | Condition.subject.where(resolve() is Patient) | ...`.
    The split is on top-level `|` only (not inside parentheses).
    """
    alternatives = _split_top_level(expression, "|")
    prefixes = (
        f"{resource_type}.",
        f"({resource_type}.",
        *(f"{b}." for b in COMMON_BASES),
        *(f"({b}." for b in COMMON_BASES),
    )
    kept = [a.strip() for a in alternatives if a.strip().startswith(prefixes)]
    if not kept and len(alternatives) == 1 and resource_type in expression:
        kept = [expression.strip()]
    return " | ".join(kept)


def _split_top_level(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    quoted = False
    current: list[str] = []
    for char in text:
        if char == "'":
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
        if char == separator and depth == 0 and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts
