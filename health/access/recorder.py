"""Who recorded a version: the party the access rules credit with it."""

from __future__ import annotations

from health.access.actor import Actor, ActorKind


def recorder_of(actor: Actor) -> str | None:
    """`Organization/x`, `Practitioner/x` or `Patient/x`; None for the system.

    A hospital's or GP's client records for its organisation; a clinician's app for
    the clinician; a citizen (or a proxy acting for them) for the citizen's record.
    """
    if actor.kind is ActorKind.client and actor.organization_id:
        return f"Organization/{actor.organization_id}"
    if actor.kind is ActorKind.clinician and actor.fhir_user:
        return actor.fhir_user
    if actor.kind is ActorKind.citizen and actor.patient_id:
        return f"Patient/{actor.patient_id}"
    return None
