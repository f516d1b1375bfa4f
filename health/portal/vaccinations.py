"""Vaccinations: every dose once (a GP and a hospital may both report it), newest first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from health.portal.datatypes import concept_text, parse_time, reference_display
from health.portal.record import Record
from health.portal.sources import Reported, merge_facts


@dataclass(frozen=True)
class Vaccination:
    vaccine: str
    given: datetime | None
    dose: str
    series: str
    lot: str
    given_by: str
    entry: Reported


def vaccinations(record: Record) -> list[Vaccination]:
    found = []
    immunizations = [
        i for i in record.of_type("Immunization") if i.get("status") != "entered-in-error"
    ]
    for entry in merge_facts(immunizations, record):
        immunization = entry.resource
        protocol = (immunization.get("protocolApplied") or [{}])[0]
        performers = immunization.get("performer") or [{}]
        found.append(
            Vaccination(
                vaccine=concept_text(immunization.get("vaccineCode"), "?"),
                given=parse_time(immunization.get("occurrenceDateTime")),
                dose=str(
                    protocol.get("doseNumberPositiveInt") or protocol.get("doseNumberString") or ""
                ),
                series=str(protocol.get("series") or ""),
                lot=str(immunization.get("lotNumber") or ""),
                given_by=reference_display(performers[0].get("actor")),
                entry=entry,
            )
        )
    return sorted(found, key=lambda v: v.given.timestamp() if v.given else 0.0, reverse=True)
