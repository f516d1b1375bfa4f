"""Who a person logged in at the eID is to this server: clinician or citizen.

https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html#fhiruser: a
person whose national ID is on an active Practitioner's `identifier` is a clinician
(fhirUser = that Practitioner); anyone else is a citizen, whose record is the Patient
carrying that national ID.
"""

from __future__ import annotations

from datetime import datetime

import orjson
from sqlalchemy.orm import Session

from health.access.actor import ActorKind
from health.access.proxy import ProxyRight, proxy_right
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


def proxy_rights(
    session: Session,
    national_id: str,
    systems: list[str],
    *,
    child_age: int,
    now: datetime,
) -> list[ProxyRight]:
    """The citizens the person with `national_id` may act for (health/access/proxy.py):
    their children in custody under the age limit, and powers of attorney.

    Read as the system, like the login itself: the person has no record access yet.
    Callers pass on the rights (ids and bases) only.
    """
    system = Repository.system(session)
    rights = []
    for related in with_national_id(session, "RelatedPerson", national_id, systems, limit=50):
        if related.body is None or related.patient_id is None:
            continue
        principal = system.current("Patient", related.patient_id)
        birth_date = None
        if principal is not None and principal.body is not None and not principal.deleted:
            birth_date = orjson.loads(principal.body).get("birthDate")
        right = proxy_right(
            orjson.loads(related.body),
            related_person_id=related.id,
            patient_id=related.patient_id,
            recorded_by=related.recorded_by,
            principal_birth_date=birth_date,
            proxy_national_id=national_id,
            national_id_systems=systems,
            child_age=child_age,
            now=now,
        )
        if right is not None and right.patient_id not in {r.patient_id for r in rights}:
            rights.append(right)
    return rights
