"""The "who may look" page as plain data: who treats the citizen, what they chose, and
the episodes they can hide. Pure: the record, the repository's rows and names in."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from health.portal.consent_choices import Choice, choices
from health.portal.datatypes import (
    JsonDict,
    concept_text,
    first_concept_text,
    period,
    reference_display,
    reference_key,
)
from health.portal.record import Record

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Relationship:
    """A clinician or organisation that treats (or treated) the citizen."""

    party: str
    name: str
    since: datetime | None
    until: datetime | None
    # The entry that establishes it (`Encounter/x`, `EpisodeOfCare/x`, ...).
    basis: str
    blocked: bool


@dataclass(frozen=True)
class Episode:
    """An Encounter or EpisodeOfCare the citizen may hide from other organisations."""

    reference: str
    kind: str
    description: str
    start: datetime | None
    organisation: str
    # The Consent hiding it, if it is hidden.
    hidden_by: str | None


@dataclass(frozen=True)
class WhoMayLook:
    relationships: list[Relationship]
    blocks: list[Choice]
    permits: list[Choice]
    other_choices: list[Choice]
    episodes: list[Episode]


def who_may_look(
    record: Record, relationships: Iterable[Mapping[str, Any]], names: Mapping[str, str]
) -> WhoMayLook:
    chosen = choices(record.of_type("Consent"))
    blocks = [c for c in chosen if c.kind == "block"]
    blocked = {c.reference for c in blocks}
    hidden = {c.reference: c.consent_id for c in chosen if c.kind == "hide"}
    return WhoMayLook(
        relationships=_by_party(relationships, names, blocked),
        blocks=blocks,
        permits=[c for c in chosen if c.kind == "permit"],
        other_choices=[c for c in chosen if c.kind == "other"],
        episodes=episodes(record, hidden, names),
    )


def _by_party(
    rows: Iterable[Mapping[str, Any]], names: Mapping[str, str], blocked: set[str]
) -> list[Relationship]:
    """One line per party: from its first relationship to its last (open: ongoing),
    naming the entry of the latest."""
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(str(row["party"]), []).append(row)
    lines = []
    for party, found in grouped.items():
        starts = [row["since"] for row in found if row["since"] is not None]
        ends = [row["until"] for row in found]
        # Open relationships last of all, then by end (or start); undated ones first.
        latest = max(
            found,
            key=lambda row: (
                row["until"] is None,
                (row["until"] or row["since"]) is not None,
                row["until"] or row["since"] or _EPOCH,
            ),
        )
        lines.append(
            Relationship(
                party=party,
                name=names.get(party, "") or party,
                since=min(starts) if starts else None,
                until=None if None in ends else max(ends),
                basis=f"{latest['resource_type']}/{latest['resource_id']}",
                blocked=party in blocked,
            )
        )
    return sorted(lines, key=lambda line: line.name.lower())


def episodes(record: Record, hidden: Mapping[str, str], names: Mapping[str, str]) -> list[Episode]:
    """The record's Encounters and EpisodeOfCares, newest first."""
    found = []
    for resource in record.of_type("Encounter", "EpisodeOfCare"):
        reference = f"{resource['resourceType']}/{resource.get('id')}"
        start, _ = period(resource.get("period"))
        found.append(
            Episode(
                reference=reference,
                kind=str(resource["resourceType"]),
                description=_description(resource),
                start=start,
                organisation=_organisation(resource, record, names),
                hidden_by=hidden.get(reference),
            )
        )
    return sorted(found, key=lambda e: (e.start is None, e.start), reverse=True)


def party_references(relationships: Iterable[Mapping[str, Any]], record: Record) -> set[str]:
    """The clinicians and organisations the page names, to look their names up."""
    found = {str(row["party"]) for row in relationships}
    for resource in record.of_type("Encounter", "EpisodeOfCare"):
        key = reference_key(resource.get("serviceProvider") or resource.get("managingOrganization"))
        if key:
            found.add(key)
    return found


def _description(resource: JsonDict) -> str:
    if resource.get("resourceType") == "Encounter":
        return (
            first_concept_text(resource.get("type"))
            or concept_text(resource.get("serviceType"))
            or str((resource.get("class") or {}).get("display") or "")
        )
    return first_concept_text(resource.get("type"))


def _organisation(resource: JsonDict, record: Record, names: Mapping[str, str]) -> str:
    reference = resource.get("serviceProvider") or resource.get("managingOrganization")
    key = reference_key(reference)
    if key and names.get(key):
        return names[key]
    organisation = record.get(key)
    if organisation and organisation.get("name"):
        return str(organisation["name"])
    return reference_display(reference)
