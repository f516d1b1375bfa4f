"""The directory bundle: organisations, clinicians and their roles, loaded first.

Directory entries are PUT with fixed ids (the directory is curated, not pushed), and
patient records refer to them the way a hospital system would: by identifier, as
conditional references (https://hl7.org/fhir/R4/http.html#trules), resolved when the
record is stored.
"""

from __future__ import annotations

from typing import Any

from health.seed.world import (
    CPR_SYSTEM,
    SOR_SYSTEM,
    Address,
    Clinician,
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


def directory_marker(world: World) -> tuple[str, str]:
    """A resource only the directory bundle creates: its first organisation."""
    first = next(iter(world.organisations.values()))
    return "Organization", f"identifier={SOR_SYSTEM}|{first.sor}"


def directory_bundle(world: World) -> dict[str, Any]:
    """A transaction that PUTs every organisation, clinician and clinician's role."""
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
    for key, clinician in world.clinicians.items():
        organisation = world.organisations[clinician.organisation]
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
                "telecom": [{"system": "phone", "value": organisation.phone, "use": "work"}],
            }
        )
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
