"""The access facts the repository reads and writes besides the record itself:
a clinician's organisations, emergency accesses and care relationships.

Executed only on behalf of a Repository (health/db/repository.py), with its session
and the caller's Visibility; nothing here is reachable otherwise.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, bindparam, insert, literal, or_, select
from sqlalchemy.orm import Session

from health.access.actor import Actor, ActorKind
from health.access.scope import Visibility
from health.db.tables import (
    break_glass,
    care_relationship,
    resource,
    search_date,
    search_reference,
    search_token,
)
from health.fhir.errors import forbidden


def organisations_of(session: Session, actor: Actor, now: datetime) -> tuple[str, ...]:
    """A clinician's organisations: those of their PractitionerRoles, as recorded
    by that organisation's own systems or the system (a role a clinician wrote
    about themself gives nothing)."""
    if actor.kind is not ActorKind.clinician or not actor.fhir_user:
        return ()
    kind, _, practitioner_id = actor.fhir_user.partition("/")
    if kind != "Practitioner" or not practitioner_id:
        return ()
    rows = session.execute(_ROLES, {"practitioner_id": practitioner_id, "now": now}).all()
    return tuple(
        sorted(
            {
                f"Organization/{organisation_id}"
                for organisation_id, recorded_by in rows
                if recorded_by is None or recorded_by == f"Organization/{organisation_id}"
            }
        )
    )


def _roles_statement() -> Select[tuple[str, str | None]]:
    """The organisations of a practitioner's roles in force (`:practitioner_id`, `:now`)
    and who recorded each role: built once, as it is run for every clinician request."""
    now = bindparam("now", type_=search_date.c.low.type)
    organisation = search_reference.alias("organisation")
    # Probes of the clinician's own roles (correlated), not lists of every role's rows.
    inactive = (
        select(literal(1))
        .where(
            search_token.c.resource_type == "PractitionerRole",
            search_token.c.resource_id == search_reference.c.resource_id,
            search_token.c.param == "active",
            search_token.c.code == "false",
        )
        .correlate_except(search_token)
        .exists()
    )
    # A role outside its period (ended, or not begun) gives nothing either.
    out_of_period = (
        select(literal(1))
        .where(
            search_date.c.resource_type == "PractitionerRole",
            search_date.c.resource_id == search_reference.c.resource_id,
            search_date.c.param == "date",
            or_(search_date.c.high <= now, search_date.c.low > now),
        )
        .correlate_except(search_date)
        .exists()
    )
    return (
        select(organisation.c.target_id, resource.c.recorded_by)
        .select_from(search_reference)
        .join(
            organisation,
            and_(
                organisation.c.resource_type == "PractitionerRole",
                organisation.c.resource_id == search_reference.c.resource_id,
                organisation.c.param == "organization",
                organisation.c.target_type == "Organization",
            ),
        )
        .join(
            resource,
            and_(
                resource.c.resource_type == "PractitionerRole",
                resource.c.id == search_reference.c.resource_id,
            ),
        )
        .where(
            search_reference.c.resource_type == "PractitionerRole",
            search_reference.c.param == "practitioner",
            search_reference.c.target_type == "Practitioner",
            search_reference.c.target_id == bindparam("practitioner_id"),
            resource.c.deleted.is_(False),
            ~inactive,
            ~out_of_period,
        )
    )


def _open_emergencies_statement() -> Select[tuple[str]]:
    """The citizens a practitioner (`:practitioner`) has emergency access to at `:now`."""
    now = bindparam("now", type_=break_glass.c.started.type)
    return select(break_glass.c.patient_id).where(
        break_glass.c.practitioner == bindparam("practitioner"),
        break_glass.c.started <= now,
        break_glass.c.expires > now,
    )


# Built once per process: building them per request cost more than running them, and
# a statement object that is reused keeps its SQLAlchemy cache key, so it is neither
# rebuilt nor walked again (docs/BENCHMARKS.md, "Consent and logging").
_ROLES = _roles_statement()
_OPEN_EMERGENCIES = _open_emergencies_statement()


class AccessRecords:
    """Emergency accesses and care relationships, as the caller may see them."""

    def __init__(self, session: Session, visibility: Visibility) -> None:
        self._session = session
        self.visibility = visibility

    def grant_emergency_access(
        self, actor: Actor, patient_id: str, reason: str, duration: timedelta
    ) -> bool:
        """Open a clinician's emergency access to one citizen's record; False when the
        citizen is unknown. An access still open is reused, not extended."""
        practitioner = self.visibility.practitioner
        if practitioner is None:
            raise forbidden("Only a clinician can ask for emergency access")
        known = self._session.execute(
            select(resource.c.id).where(
                resource.c.resource_type == "Patient",
                resource.c.id == patient_id,
                resource.c.deleted.is_(False),
            )
        ).first()
        if known is None:
            return False
        if patient_id in self.emergency_patients():
            return True
        organisations = [p for p in self.visibility.parties if p.startswith("Organization/")]
        self._session.execute(
            insert(break_glass).values(
                id=str(uuid.uuid4()),
                practitioner=practitioner,
                organization=organisations[0] if organisations else None,
                client_id=actor.client_id,
                patient_id=patient_id,
                reason=reason,
                started=self.visibility.now,
                expires=self.visibility.now + duration,
            )
        )
        return True

    def emergency_patients(self) -> set[str]:
        """The citizens the calling clinician has open emergency access to."""
        practitioner = self.visibility.practitioner
        if practitioner is None:
            return set()
        return set(
            self._session.execute(
                _OPEN_EMERGENCIES, {"practitioner": practitioner, "now": self.visibility.now}
            ).scalars()
        )

    def emergency_accesses_to(self, patient_id: str, since: datetime) -> list[dict[str, Any]]:
        """Emergency accesses to a citizen's record begun since `since`, newest first:
        for the citizen's front page (their own record, or one they are proxy for)."""
        if not self.visibility.everything and self.visibility.record_of != patient_id:
            return []
        rows = self._session.execute(
            select(
                break_glass.c.practitioner,
                break_glass.c.organization,
                break_glass.c.reason,
                break_glass.c.started,
                break_glass.c.expires,
            )
            .where(break_glass.c.patient_id == patient_id, break_glass.c.started >= since)
            .order_by(break_glass.c.started.desc())
        ).all()
        return [dict(row._mapping) for row in rows]

    def care_relationships_of(self, patient_id: str) -> list[dict[str, Any]]:
        """The parties that treat (or treated) a citizen, with the period and the entry
        that establishes it: for the citizen's "who may look" page (their own record,
        or one they are proxy for)."""
        if not self.visibility.everything and self.visibility.record_of != patient_id:
            return []
        rows = self._session.execute(
            select(
                care_relationship.c.party,
                care_relationship.c.since,
                care_relationship.c.until,
                care_relationship.c.resource_type,
                care_relationship.c.resource_id,
            )
            .where(care_relationship.c.patient_id == patient_id)
            .order_by(care_relationship.c.until.desc(), care_relationship.c.party)
        ).all()
        return [dict(row._mapping) for row in rows]
