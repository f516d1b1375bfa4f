"""Who is asking: the caller a Repository computes its visible scope for."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from health.access.proxy import ProxyRight
from health.auth.scopes import Permission, Scopes


class ActorKind(StrEnum):
    # Ingest, seeding, migrations and maintenance commands: sees and writes everything.
    # Never reachable over HTTP: no token names it.
    system = "system"
    # A citizen through an app of their own (SMART `patient/` scopes): their own record.
    citizen = "citizen"
    # A clinician through their system's app (SMART `user/` scopes), as a Practitioner.
    clinician = "clinician"
    # A hospital or GP system (SMART Backend Services), acting for its Organization.
    client = "client"
    # An auditor's backend client: reads the access log, never the record itself.
    auditor = "auditor"


@dataclass(frozen=True)
class Actor:
    kind: ActorKind
    # What the caller is called in logs and error messages.
    display: str
    # What the caller's token permits; None for the system, which needs no token.
    scopes: Scopes | None = None
    # The patient whose record a citizen's token is confined to (SMART `patient`).
    patient_id: str | None = None
    # The user behind an app's token: `Practitioner/x` or `Patient/x` (SMART fhirUser).
    fhir_user: str | None = None
    national_id: str | None = None
    # The Organization a backend client acts for.
    organization_id: str | None = None
    client_id: str | None = None
    # The authorization the token was issued under (revoking it ends the token).
    grant_id: str | None = None
    # A person acting for the citizen `patient_id` (a parent, a holder of a power of
    # attorney): `national_id` and `display` are then the proxy's own.
    proxy: ProxyRight | None = None

    def may(self, permission: Permission, resource_type: str) -> bool:
        """Whether the caller's scopes permit `permission` on `resource_type`."""
        return self.scopes is None or self.scopes.allows(permission, resource_type)


SYSTEM = Actor(kind=ActorKind.system, display="system")
