"""One organisation's record system sending what it holds about one citizen.

`SourceRecord` collects the entries of that transaction Bundle and gives every
resource what a real push would carry: the system's local identifier (a UUID derived
from where the resource comes from in world.json, so every run gives the same ids),
its URL in `meta.source`, and references to the directory by identifier.
"""

from __future__ import annotations

import random
import uuid
from datetime import date, datetime, timedelta, timezone
from typing import Any

from health.seed.directory import clinician_reference, organisation_reference
from health.seed.measurements import Measurements
from health.seed.world import Citizen, Organisation, World, resolve_date

# Fixed: the ids of the demo world must be the same on every run.
NAMESPACE = uuid.UUID("0f8d3c6e-54a1-4b9e-8d0c-5d1e2a7b9c41")
ICD10 = "http://hl7.org/fhir/sid/icd-10"
LOINC = "http://loinc.org"
ATC = "http://www.whocc.no/atc"
SNOMED = "http://snomed.info/sct"
TERMINOLOGY = "http://terminology.hl7.org/CodeSystem"


def patient_id(citizen: Citizen) -> str:
    """The fixed id of a citizen's Patient (until person matching assigns ids on ingest)."""
    return str(uuid.uuid5(NAMESPACE, f"Patient/{citizen.person.cpr}"))


def concept(system: str, code: str, display: str, text: str | None = None) -> dict[str, Any]:
    coding = {"system": system, "code": code, "display": display}
    return {"coding": [coding], "text": text or display}


def copenhagen_time(day: date, hour: int, minute: int) -> datetime:
    """Danish local time: CET, or CEST from the last Sunday of March to that of October."""
    summer = _last_sunday(day.year, 3) <= day < _last_sunday(day.year, 10)
    offset = timezone(timedelta(hours=2 if summer else 1))
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=offset)


def _last_sunday(year: int, month: int) -> date:
    last = date(year, month + 1, 1) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - 6) % 7)


class SourceRecord:
    """The entries of one citizen's Bundle from one organisation, added event by event."""

    def __init__(
        self, world: World, citizen: Citizen, organisation: Organisation, today: date
    ) -> None:
        self.world = world
        self.citizen = citizen
        self.organisation = organisation
        self.today = today
        self.catalogue = world.catalogue
        self.rng = random.Random(f"{citizen.person.key}/{organisation.key}")
        self.measurements = Measurements(world.catalogue["labs"], self.rng)
        self.entries: list[dict[str, Any]] = []
        self.patient = {
            "reference": f"Patient/{patient_id(citizen)}",
            "display": citizen.person.full_name,
        }
        self.provider = organisation_reference(organisation)
        self.id_system = f"{organisation.ehr}/id"

    def marker(self) -> tuple[str, str]:
        """(type, query) of the first resource this record creates."""
        for entry in self.entries:
            resource = entry["resource"]
            for identifier in resource.get("identifier", []):
                if identifier["system"] == self.id_system:
                    query = f"identifier={self.id_system}|{identifier['value']}"
                    return resource["resourceType"], query
        raise ValueError(f"{self.citizen.person.key}@{self.organisation.key} creates nothing")

    def add(self, resource_type: str, scope: str, body: dict[str, Any]) -> str:
        """POST a resource with a local id derived from `scope`; returns its fullUrl."""
        local_id = uuid.uuid5(
            NAMESPACE, f"{self.citizen.person.key}/{self.organisation.key}/{scope}"
        )
        identifiers = [{"system": self.id_system, "value": str(local_id)}]
        resource = {
            "resourceType": resource_type,
            "meta": {"source": self.organisation.ehr},
            "identifier": identifiers + body.pop("identifier", []),
            **body,
        }
        full_url = f"urn:uuid:{local_id}"
        self.entries.append(
            {
                "fullUrl": full_url,
                "resource": resource,
                "request": {"method": "POST", "url": resource_type},
            }
        )
        return full_url

    def date(self, value: str) -> date:
        return resolve_date(value, self.today)

    def moment(self, day: date) -> datetime:
        """A working-hours time on `day`."""
        return copenhagen_time(day, self.rng.randint(8, 14), self.rng.choice((0, 15, 30, 45)))

    def clinician(self, event: dict[str, Any]) -> dict[str, str]:
        return clinician_reference(self.world.clinicians[event["clinician"]])

    def diagnosis(self, code: str, text: str | None = None) -> dict[str, Any]:
        return concept(ICD10, code, self.catalogue["diagnoses"][code], text)

    def medicine(self, atc: str) -> dict[str, Any]:
        medicine = self.catalogue["medicines"][atc]
        return concept(ATC, atc, medicine["name"], f"{medicine['name']} {medicine['strength']}")
