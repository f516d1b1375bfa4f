"""The door's last step: what the access log records of a unit of work.

Every read the repository served is in `Repository.disclosed`, every read of a
citizen's data it refused in `Repository.refused`; this turns them, with the consent
changes written, into access-log entries: one per citizen concerned, naming who, on
whose behalf, why, and which resources (health/audit/).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from health.access.actor import Actor, ActorKind
from health.audit.entries import BREAK_GLASS_ACTION, AuditEntry, Purpose
from health.db.repository import Repository
from health.db.versions import StoredVersion, Write


def disclosure_entries(repository: Repository, action: str) -> list[AuditEntry]:
    """One entry per citizen whose data the repository handed out."""
    disclosed = _by_patient(repository.disclosed)
    clinician = repository.actor.kind is ActorKind.clinician
    emergency = repository.emergency_patients() if clinician and disclosed else set()
    entries = []
    for patient_id, references in disclosed.items():
        entries.append(
            entry_for(
                repository,
                action=action,
                patient_id=patient_id,
                entities=references,
                purpose="emergency" if patient_id in emergency else None,
            )
        )
    return entries


def refusal_entries(repository: Repository, action: str, reason: str) -> list[AuditEntry]:
    """One entry per citizen whose data the caller asked for and was refused."""
    by_patient: dict[str, list[str]] = {}
    for resource_type, resource_id, patient_id in repository.refused:
        by_patient.setdefault(patient_id, []).append(f"{resource_type}/{resource_id}")
    return [
        entry_for(
            repository,
            action=action,
            patient_id=patient_id,
            entities=references,
            outcome="refused",
            detail=reason,
        )
        for patient_id, references in by_patient.items()
    ]


def consent_entries(repository: Repository, written: Iterable[Write]) -> list[AuditEntry]:
    """One entry per Consent created, changed or deleted."""
    return [
        entry_for(
            repository,
            action="consent",
            patient_id=w.patient_id,
            entities=[f"Consent/{w.id}"],
            detail="deleted" if w.deleted else f"version {w.version_id}",
        )
        for w in written
        if w.resource_type == "Consent" and w.patient_id is not None
    ]


def break_glass_entry(repository: Repository, patient_id: str, reason: str) -> AuditEntry:
    return entry_for(
        repository,
        action=BREAK_GLASS_ACTION,
        patient_id=patient_id,
        entities=[f"Patient/{patient_id}"],
        purpose="emergency",
        detail=reason,
    )


def entry_for(
    repository: Repository,
    *,
    action: str,
    patient_id: str | None,
    entities: Sequence[str],
    purpose: Purpose | None = None,
    outcome: str = "success",
    detail: str | None = None,
) -> AuditEntry:
    """An entry about the repository's caller."""
    actor = repository.actor
    organisations = [p for p in repository.visibility.parties if p.startswith("Organization/")]
    return AuditEntry(
        action=action,
        outcome="refused" if outcome == "refused" else "success",
        purpose=purpose or purpose_of(actor),
        agent_kind=actor.kind.value,
        agent=agent_of(actor),
        agent_name=actor.display,
        organization=organisations[0] if organisations else None,
        client_id=actor.client_id,
        on_behalf_of=f"Patient/{actor.patient_id}" if actor.proxy is not None else None,
        patient_id=patient_id,
        entities=tuple(entities),
        detail=detail,
    )


def purpose_of(actor: Actor) -> Purpose:
    if actor.kind is ActorKind.citizen:
        return "proxy" if actor.proxy is not None else "self"
    if actor.kind is ActorKind.clinician:
        return "treatment"
    if actor.kind is ActorKind.auditor:
        return "audit"
    return "operations"


def agent_of(actor: Actor) -> str | None:
    """The acting person or system as a reference: a proxy by the RelatedPerson entry
    that gives them the right, a citizen by their Patient, a clinician by their
    Practitioner, a hospital's system by its Organization."""
    if actor.proxy is not None:
        return f"RelatedPerson/{actor.proxy.related_person_id}"
    if actor.kind is ActorKind.citizen and actor.patient_id:
        return f"Patient/{actor.patient_id}"
    if actor.kind is ActorKind.clinician:
        return actor.fhir_user
    if actor.organization_id:
        return f"Organization/{actor.organization_id}"
    return None


def _by_patient(versions: Sequence[StoredVersion]) -> dict[str, list[str]]:
    grouped: dict[str, dict[str, None]] = {}
    for version in versions:
        if version.patient_id is not None:
            grouped.setdefault(version.patient_id, {})[f"{version.resource_type}/{version.id}"] = (
                None
            )
    return {patient_id: list(references) for patient_id, references in grouped.items()}
