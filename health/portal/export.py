"""The citizen's own copy of the record: a FHIR Bundle to download, a summary to print."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from health.portal.appointments import AppointmentLine, appointments
from health.portal.conditions import Allergy, Diagnosis, allergies, diagnoses
from health.portal.medications import MedicationCard, medication_card
from health.portal.record import Record
from health.portal.results import LabTest, latest_results
from health.portal.vaccinations import Vaccination, vaccinations

SUMMARY_RESULTS = 12


def record_bundle(
    record: Record, fhir_base_url: str, now: datetime | None = None
) -> dict[str, Any]:
    """The whole record as a `collection` Bundle: the citizen's resources and the
    directory entries they refer to. https://hl7.org/fhir/R4/bundle.html#bundle-collection
    """
    now = now or datetime.now(UTC)
    resources = [*record.resources, *record.directory.values()]
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": now.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "total": len(resources),
        "entry": [
            {
                "fullUrl": f"{fhir_base_url}/{resource['resourceType']}/{resource['id']}",
                "resource": resource,
            }
            for resource in resources
        ],
    }


def bundle_filename(now: datetime | None = None) -> str:
    return f"health-record-{(now or datetime.now(UTC)).date().isoformat()}.json"


@dataclass(frozen=True)
class Summary:
    """What the printable summary holds."""

    diagnoses: list[Diagnosis]
    allergies: list[Allergy]
    medications: MedicationCard
    vaccinations: list[Vaccination]
    results: list[LabTest]
    upcoming: list[AppointmentLine]


def summary(record: Record, now: datetime | None = None) -> Summary:
    now = now or datetime.now(UTC)
    return Summary(
        diagnoses=diagnoses(record),
        allergies=allergies(record),
        medications=medication_card(record, now),
        vaccinations=vaccinations(record),
        results=latest_results(record, SUMMARY_RESULTS),
        upcoming=[a for a in appointments(record, now) if a.upcoming],
    )
