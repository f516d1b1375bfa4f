"""The caller's visible scope as plain data: what the repository compiles into SQL.

Computed once per Repository (health/db/repository.py) from the Actor and, for a
clinician, their organisations (PractitionerRoles); health/db/access_sql.py turns it
into the one WHERE clause every query of that repository carries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from health.access.actor import Actor, ActorKind
from health.access.policy import CareRules
from health.access.recorder import recorder_of


@dataclass(frozen=True)
class Visibility:
    kind: ActorKind
    now: datetime
    rules: CareRules
    # The types the caller's token may read; None: every type.
    readable_types: frozenset[str] | None = None
    # A citizen's (or their proxy's) one compartment.
    record_of: str | None = None
    # The parties the caller is: `Practitioner/x` and its organisations for a
    # clinician, `Organization/x` for a client, `Patient/x` for a citizen.
    parties: tuple[str, ...] = ()

    @property
    def everything(self) -> bool:
        return self.kind is ActorKind.system

    @property
    def practitioner(self) -> str | None:
        """A clinician's own `Practitioner/x` (None for every other caller)."""
        if self.kind is not ActorKind.clinician:
            return None
        return next((p for p in self.parties if p.startswith("Practitioner/")), None)


def visibility_of(
    actor: Actor, now: datetime, rules: CareRules, organisations: tuple[str, ...] = ()
) -> Visibility:
    """The scope of `actor`; `organisations`: a clinician's, from their roles."""
    readable = actor.scopes.readable_types() if actor.scopes else None
    own = recorder_of(actor)
    parties = tuple(p for p in (own, *organisations) if p is not None)
    record_of = actor.patient_id if actor.kind is ActorKind.citizen else None
    return Visibility(
        kind=actor.kind,
        now=now,
        rules=rules,
        readable_types=readable,
        record_of=record_of,
        parties=parties,
    )
