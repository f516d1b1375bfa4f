"""One organisation's record system sending what it holds about one citizen.

`SourceRecord` collects the entries of that transaction Bundle and gives every
resource what a real push would carry: the system's local identifier (a UUID derived
from where the resource comes from in world.json, so every run gives the same ids;
it is also the entry's urn:uuid fullUrl, the source id the push path keys the
resource by), the citizen's Patient as this system knows them (with the CPR number
that person matching needs), and references to the directory by identifier. Where
it came from (meta.source) is not the Bundle's to say: the push path stamps it.
"""

from __future__ import annotations

import random
import uuid
from datetime import date, datetime, timedelta, timezone
from typing import Any

from health.seed.directory import clinician_reference, location_reference, organisation_reference
from health.seed.measurements import Measurements
from health.seed.world import Citizen, Organisation, World, resolve_date

# Fixed: the ids of the demo world must be the same on every run.
NAMESPACE = uuid.UUID("0f8d3c6e-54a1-4b9e-8d0c-5d1e2a7b9c41")
ICD10 = "http://hl7.org/fhir/sid/icd-10"
LOINC = "http://loinc.org"
ATC = "http://www.whocc.no/atc"
SNOMED = "http://snomed.info/sct"
TERMINOLOGY = "http://terminology.hl7.org/CodeSystem"


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
        self.entries: list[dict[str, Any]] = []
        self.patient = {
            "reference": self.full_url("patient"),
            "display": citizen.person.full_name,
        }
        self.provider = organisation_reference(organisation)
        self.id_system = f"{organisation.ehr}/id"
        self.reseed("record")

    def reseed(self, scope: str) -> None:
        """Draw what follows from a generator of its own, seeded with `scope`.

        Each event (and each vaccine dose) has its own, so that what happened long ago
        comes out the same whatever the load date: a later load re-pushes it unchanged.
        """
        self.rng = self.random(scope)
        self.measurements = Measurements(self.catalogue["labs"], self.rng)

    def random(self, scope: str) -> random.Random:
        """A generator of its own for `scope` of this record."""
        return random.Random(f"{self.citizen.person.key}/{self.organisation.key}/{scope}")

    def full_url(self, scope: str) -> str:
        """The urn:uuid of the resource from `scope`: the same on every run."""
        return f"urn:uuid:{self.local_id(scope)}"

    def local_id(self, scope: str) -> str:
        return str(
            uuid.uuid5(NAMESPACE, f"{self.citizen.person.key}/{self.organisation.key}/{scope}")
        )

    def add(self, resource_type: str, scope: str, body: dict[str, Any]) -> str:
        """POST a resource with a local id derived from `scope`; returns its fullUrl."""
        local_id = self.local_id(scope)
        identifiers = [{"system": self.id_system, "value": local_id}]
        resource = {
            "resourceType": resource_type,
            "identifier": identifiers + body.pop("identifier", []),
            **body,
        }
        full_url = self.full_url(scope)
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

    def location(self, event: dict[str, Any]) -> dict[str, str]:
        """Where `event` took place: where its clinician works."""
        clinician = self.world.clinicians[event["clinician"]]
        return location_reference(self.world.location(clinician.location))

    def diagnosis(self, code: str, text: str | None = None) -> dict[str, Any]:
        return concept(ICD10, code, self.catalogue["diagnoses"][code], text)

    def medicine(self, atc: str) -> dict[str, Any]:
        medicine = self.catalogue["medicines"][atc]
        return concept(ATC, atc, medicine["name"], f"{medicine['name']} {medicine['strength']}")
