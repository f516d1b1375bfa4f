"""The rows a resource contributes to the search index: the extractor's output."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class IndexRows:
    """Extracted values by parameter type; each tuple starts with the parameter code.

    The repository writes them to the table of their type (health/db/tables.py).
    """

    # (param, system, code, text): text is the normalised display/text, for :text.
    tokens: list[tuple[str, str | None, str | None, str | None]] = field(default_factory=list)
    # (param, normalised value, exact value)
    strings: list[tuple[str, str, str]] = field(default_factory=list)
    # (param, low, high): the instants [low, high) the value covers, aware UTC.
    dates: list[tuple[str, datetime, datetime]] = field(default_factory=list)
    # (param, target_type, target_id, url): local references by type and id, others by url.
    references: list[tuple[str, str | None, str | None, str | None]] = field(default_factory=list)
    # (param, value, system, code, unit)
    quantities: list[tuple[str, float, str | None, str | None, str | None]] = field(
        default_factory=list
    )
    # (param, value)
    numbers: list[tuple[str, float]] = field(default_factory=list)
    # (param, value)
    uris: list[tuple[str, str]] = field(default_factory=list)
