"""Values extracted from a resource at write time for search and conditional matching."""

from __future__ import annotations

from typing import Any

TokenRow = tuple[str, str | None, str | None]  # (param, system, code)


def token_rows(resource: dict[str, Any]) -> list[TokenRow]:
    """The `identifier` tokens of a resource (single or repeating element)."""
    identifiers = resource.get("identifier")
    if isinstance(identifiers, dict):
        identifiers = [identifiers]
    if not isinstance(identifiers, list):
        return []
    rows: list[TokenRow] = []
    for identifier in identifiers:
        if not isinstance(identifier, dict):
            continue
        system, value = identifier.get("system"), identifier.get("value")
        if value is None and system is None:
            continue
        rows.append(("identifier", system, value))
    return rows
