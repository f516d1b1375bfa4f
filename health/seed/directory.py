"""The directory: organisations, their locations, clinicians and their roles.

The directory is curated (in Denmark: the SOR register of organisations and locations,
the authorisation register of clinicians), not pushed by any one source, so the demo
writes it as the system before any record is pushed: an organisation has to exist
before it can act as a source (its Organization's id is the source's identity), and
each push then finds it, its locations and its clinicians by identifier. Entries
have fixed ids (`Organization/nordhavn`), so that demo URLs are stable, and patient
records refer to them the way a hospital system would: by identifier, as conditional
references (https://hl7.org/fhir/R4/http.html#trules), resolved when the record is
stored.
"""

from __future__ import annotations

from typing import Any

from health.seed.world import (
    CPR_SYSTEM,
    SOR_SYSTEM,
    Address,
    Clinician,
    Location,
    Organisation,
    Person,
    World,
)

ORGANIZATION_TYPE = "http://terminology.hl7.org/CodeSystem/organization-type"
PRACTITIONER_ROLE = "http://terminology.hl7.org/CodeSystem/practitioner-role"
_KIND_TEXT = {"hospital": "Hospital", "gp": "Almen praksis"}
_ROLE_DISPLAY = {"doctor": "Doctor", "nurse": "Nurse"}


def organisation_reference(organisation: Organisation) -> dict[str, str]:
    return {
        "reference": f"Organization?identifier={SOR_SYSTEM}|{organisation.sor}",
        "display": organisation.name,
    }


def clinician_reference(clinician: Clinician) -> dict[str, str]:
    return {
        "reference": f"Practitioner?identifier={CPR_SYSTEM}|{clinician.person.cpr}",
        "display": clinician.person.full_name,
    }


def location_reference(location: Location) -> dict[str, str]:
    return {
        "reference": f"Location?identifier={SOR_SYSTEM}|{location.sor}",
        "display": location.name,
    }


def directory_resources(world: World) -> list[dict[str, Any]]:
    """Every organisation, location, clinician and clinician's role, with fixed ids."""
    resources: list[dict[str, Any]] = []
    for key, organisation in world.organisations.items():
        resources.append(
            {
                "resourceType": "Organization",
                "id": key,
                "identifier": [
                    {"use": "official", "system": SOR_SYSTEM, "value": organisation.sor}
                ],
                "active": True,
                "type": [
                    {
                        "coding": [
                            {
                                "system": ORGANIZATION_TYPE,
                                "code": "prov",
                                "display": "Healthcare Provider",
                            }
                        ],
                        "text": _KIND_TEXT[organisation.kind],
                    }
                ],
                "name": organisation.name,
                "telecom": [{"system": "phone", "value": organisation.phone, "use": "work"}],
                "address": [fhir_address(organisation.address, use="work")],
            }
        )
        for location in organisation.locations:
            resources.append(
                {
                    "resourceType": "Location",
                    "id": location.key,
                    "identifier": [
                        {"use": "official", "system": SOR_SYSTEM, "value": location.sor}
                    ],
                    "status": "active",
                    "name": location.name,
                    "mode": "instance",
                    "telecom": [{"system": "phone", "value": organisation.phone, "use": "work"}],
                    "address": fhir_address(organisation.address, use="work"),
                    "managingOrganization": {
                        "reference": f"Organization/{key}",
                        "display": organisation.name,
                    },
                }
            )
    for key, clinician in world.clinicians.items():
        organisation = world.organisations[clinician.organisation]
        location = world.location(clinician.location)
        resources.append(
            {
                "resourceType": "Practitioner",
                "id": key,
                "identifier": [
                    {"use": "official", "system": CPR_SYSTEM, "value": clinician.person.cpr}
                ],
                "active": True,
                "name": [human_name(clinician.person)],
                "gender": clinician.person.gender,
                "birthDate": clinician.person.birth_date.isoformat(),
                "qualification": [{"code": {"text": f"{clinician.title}, {clinician.specialty}"}}],
            }
        )
        resources.append(
            {
                "resourceType": "PractitionerRole",
                "id": f"{key}-{organisation.key}",
                "active": True,
                "practitioner": {
                    "reference": f"Practitioner/{key}",
                    "display": clinician.person.full_name,
                },
                "organization": {
                    "reference": f"Organization/{organisation.key}",
                    "display": organisation.name,
                },
                "code": [
                    {
                        "coding": [
                            {
                                "system": PRACTITIONER_ROLE,
                                "code": clinician.role,
                                "display": _ROLE_DISPLAY[clinician.role],
                            }
                        ],
                        "text": clinician.title,
                    }
                ],
                "specialty": [{"text": clinician.specialty}],
                "location": [
                    {"reference": f"Location/{clinician.location}", "display": location.name}
                ],
                "telecom": [{"system": "phone", "value": organisation.phone, "use": "work"}],
            }
        )
    return resources


def directory_bundle(resources: list[dict[str, Any]]) -> dict[str, Any]:
    """A transaction that PUTs `resources` (directory entries) under their fixed ids."""
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": resource,
                "request": {"method": "PUT", "url": f"{resource['resourceType']}/{resource['id']}"},
            }
            for resource in resources
        ],
    }


def human_name(person: Person) -> dict[str, Any]:
    return {
        "use": "official",
        "text": person.full_name,
        "family": person.family,
        "given": list(person.given),
    }


def fhir_address(address: Address, *, use: str) -> dict[str, Any]:
    return {
        "use": use,
        "type": "physical",
        "line": list(address.line),
        "city": address.city,
        "postalCode": address.postal_code,
        "country": "DK",
    }
