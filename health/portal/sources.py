"""Where every entry came from, and one entry for a fact reported by several sources.

Each pushed resource carries `meta.source`, the URL of the Organization that pushed
it (health/ingest), and, for facts two sources may both report, a `meta.tag` in
urn:health:fact (health/ingest/facts.py). The portal shows such a fact once, naming
every source and when each reported it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from health.ingest.facts import FACT_SYSTEM
from health.portal.datatypes import JsonDict, parse_time, source_key
from health.portal.record import Record


@dataclass(frozen=True)
class Source:
    """An organisation that pushed part of the record."""

    # `Organization/<id>` when the URL names one of ours, else the URL itself.
    key: str
    name: str


@dataclass(frozen=True)
class Report:
    """One source's copy of an entry: who, and when the server received it."""

    source: Source
    received: datetime | None
    resource: JsonDict


@dataclass(frozen=True)
class Reported:
    """An entry as the portal shows it: one fact, with every source that reported it."""

    resource: JsonDict
    reports: tuple[Report, ...]

    @property
    def sources(self) -> tuple[Source, ...]:
        seen: dict[str, Source] = {}
        for report in self.reports:
            seen.setdefault(report.source.key, report.source)
        return tuple(seen.values())

    @property
    def source_keys(self) -> frozenset[str]:
        return frozenset(report.source.key for report in self.reports)

    @property
    def id(self) -> str:
        return str(self.resource.get("id", ""))


UNKNOWN_SOURCE = Source(key="", name="")


def source_of(resource: JsonDict, record: Record) -> Source:
    """The organisation that pushed `resource`, named from the directory when we can."""
    return source_named(resource_source(resource), record)


def resource_source(resource: JsonDict) -> str | None:
    url = (resource.get("meta") or {}).get("source")
    return url if isinstance(url, str) and url else None


def source_named(url: str | None, record: Record) -> Source:
    """The source a `meta.source` URL names, named from the directory when we can."""
    key = source_key(url)
    if not key:
        return UNKNOWN_SOURCE
    if not key.startswith("Organization/"):
        return Source(key=key, name=key)
    organisation = record.directory.get(key) or {}
    return Source(key=key, name=str(organisation.get("name") or key))


def fact_code(resource: JsonDict) -> str | None:
    for tag in (resource.get("meta") or {}).get("tag") or []:
        if isinstance(tag, dict) and tag.get("system") == FACT_SYSTEM and tag.get("code"):
            return str(tag["code"])
    return None


def report_of(resource: JsonDict, record: Record) -> Report:
    return Report(
        source=source_of(resource, record),
        received=parse_time((resource.get("meta") or {}).get("lastUpdated")),
        resource=resource,
    )


def merge_facts(resources: Iterable[JsonDict], record: Record) -> list[Reported]:
    """One entry per fact: copies sharing a fact tag become one entry naming each source.

    The first copy (in the order given) is the one shown; resources without a tag
    stand alone.
    """
    return [
        Reported(
            resource=copies[0],
            reports=tuple(report_of(copy, record) for copy in copies),
        )
        for copies in fact_copies(resources)
    ]


def fact_copies(resources: Iterable[JsonDict]) -> list[list[JsonDict]]:
    """The resources grouped by fact tag, each group in the order given and the groups
    in the order of their first copies; a resource without a tag is a group alone."""
    groups: list[list[JsonDict]] = []
    by_fact: dict[str, list[JsonDict]] = {}
    for resource in resources:
        code = fact_code(resource)
        if code is not None and code in by_fact:
            by_fact[code].append(resource)
            continue
        copies = [resource]
        groups.append(copies)
        if code is not None:
            by_fact[code] = copies
    return groups


def record_sources(record: Record, also: Iterable[str | None] = ()) -> list[Source]:
    """Every organisation that pushed part of the record, by name (for filters); `also`:
    the `meta.source` URLs of further entries known without their bodies."""
    found: dict[str, Source] = {}
    urls = (
        resource_source(resource)
        for resource in record.resources
        if resource.get("resourceType") not in ("Patient", "Provenance")
    )
    for url in (*urls, *also):
        source = source_named(url, record)
        if source.key:
            found.setdefault(source.key, source)
    return sorted(found.values(), key=lambda source: source.name)
