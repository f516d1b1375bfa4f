"""Diagnoses and allergies as the citizen reads them: current first, every source named."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from health.portal.datatypes import (
    JsonDict,
    concept_text,
    first_time,
    parse_time,
    reference_display,
)
from health.portal.record import Record
from health.portal.sources import Reported, merge_facts

_INACTIVE = frozenset({"inactive", "resolved", "remission"})


@dataclass(frozen=True)
class Diagnosis:
    name: str
    code: str
    active: bool
    onset: datetime | None
    abated: datetime | None
    clinician: str
    entry: Reported


@dataclass(frozen=True)
class Allergy:
    substance: str
    category: str
    criticality: str
    reactions: list[str]
    active: bool
    recorded: datetime | None
    entry: Reported


def diagnoses(record: Record) -> list[Diagnosis]:
    """Every diagnosis, once per fact: active ones first, then by onset, newest first."""
    found = []
    for entry in merge_facts(record.of_type("Condition"), record):
        condition = entry.resource
        status = concept_text(condition.get("clinicalStatus")).casefold()
        coding = ((condition.get("code") or {}).get("coding") or [{}])[0]
        found.append(
            Diagnosis(
                name=concept_text(condition.get("code"), "?"),
                code=str(coding.get("code", "")),
                active=status not in _INACTIVE and "abatementDateTime" not in condition,
                onset=first_time(condition, ("onsetDateTime", "onsetPeriod", "recordedDate")),
                abated=parse_time(condition.get("abatementDateTime")),
                clinician=reference_display(condition.get("asserter"))
                or reference_display(condition.get("recorder")),
                entry=entry,
            )
        )
    return sorted(found, key=lambda d: (not d.active, -_stamp(d.onset)))


def allergies(record: Record) -> list[Allergy]:
    """Allergies and intolerances, active ones first."""
    found = []
    for entry in merge_facts(record.of_type("AllergyIntolerance"), record):
        allergy = entry.resource
        status = concept_text(allergy.get("clinicalStatus")).casefold()
        found.append(
            Allergy(
                substance=concept_text(allergy.get("code"), "?"),
                category=", ".join(str(c) for c in allergy.get("category") or []),
                criticality=str(allergy.get("criticality") or ""),
                reactions=_reactions(allergy),
                active=status not in _INACTIVE,
                recorded=first_time(allergy, ("recordedDate", "onsetDateTime")),
                entry=entry,
            )
        )
    return sorted(found, key=lambda a: (not a.active, a.substance.casefold()))


def _reactions(allergy: JsonDict) -> list[str]:
    texts = []
    for reaction in allergy.get("reaction") or []:
        for manifestation in reaction.get("manifestation") or []:
            text = concept_text(manifestation)
            if text:
                texts.append(text)
    return texts


def _stamp(moment: datetime | None) -> float:
    return moment.timestamp() if moment else 0.0
