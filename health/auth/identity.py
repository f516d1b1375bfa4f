"""Who a person logged in at the eID is to this server: clinician or citizen.

https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html#fhiruser: a
person whose national ID is on an active Practitioner's `identifier` is a clinician
(fhirUser = that Practitioner); anyone else is a citizen, whose record is the Patient
carrying that national ID.
"""

from __future__ import annotations

import orjson
from sqlalchemy.orm import Session

from health.access.actor import ActorKind
from health.auth.launch import LaunchRefused, Person
from health.db.repository import Repository
from health.db.versions import StoredVersion
from health.fhir.criteria import Criterion, Token


def with_national_id(
    session: Session, resource_type: str, national_id: str, systems: list[str], *, limit: int
) -> list[StoredVersion]:
    """The current `resource_type` resources whose identifier is `national_id` under any
    of `systems`, read as the system.

    The system actor because the authorization server must find the person before there
    is any actor to ask as: it is the login that makes one. Callers pass on ids only.
    """
    criterion = Criterion(
        "identifier", tuple(Token(system, national_id, system_given=True) for system in systems)
    )
    return Repository.system(session).match(resource_type, [criterion], limit=limit)


def identify(session: Session, national_id: str, systems: list[str]) -> Person:
    """The person with `national_id` (under any of `systems`); LaunchRefused if ambiguous."""
    practitioners = [
        found
        for found in with_national_id(session, "Practitioner", national_id, systems, limit=10)
        if found.body is not None and orjson.loads(found.body).get("active", True) is not False
    ]
    if len(practitioners) > 1:
        raise LaunchRefused(
            "More than one Practitioner carries your national ID; ask the administrator "
            "to merge them"
        )
    if practitioners:
        return Person(
            kind=ActorKind.clinician,
            fhir_user=f"Practitioner/{practitioners[0].id}",
            patient_id=None,
        )
    patients = with_national_id(session, "Patient", national_id, systems, limit=2)
    if len(patients) > 1:
        # Person matching (merging one citizen's records from several sources) is not
        # built yet; picking one of them would show the citizen part of their record.
        raise LaunchRefused(
            "More than one Patient record carries your national ID; until they are "
            "merged, apps cannot be launched for it"
        )
    if patients:
        return Person(
            kind=ActorKind.citizen, fhir_user=f"Patient/{patients[0].id}", patient_id=patients[0].id
        )
    return Person(kind=ActorKind.citizen, fhir_user=None, patient_id=None)
