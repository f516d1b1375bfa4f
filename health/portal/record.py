"""The logged-in citizen's record as the portal shows it: for now, whether it exists."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from health.db.repository import Repository
from health.fhir.criteria import Criterion, Token

# More than one Patient per national ID happens until person matching merges the
# records that several sources sent; a handful is plenty to say so.
_MAX_PATIENTS = 10


@dataclass(frozen=True)
class RecordSummary:
    # The Patient resources that carry the citizen's national ID.
    patient_ids: tuple[str, ...]

    @property
    def is_empty(self) -> bool:
        return not self.patient_ids


def record_summary_as_system(
    session: Session, national_id: str, national_id_systems: list[str]
) -> RecordSummary:
    """The Patients carrying `national_id` under any of the systems, read as the system.

    Repository.system because the portal has no actor of its own yet: a citizen actor
    is confined to one Patient, and this lookup is what finds that Patient. The consent
    issue brings the portal's citizen actor; then this becomes a search as that actor.
    Only Patient ids leave this function.
    """
    repository = Repository.system(session)
    criterion = Criterion(
        "identifier",
        tuple(Token(system, national_id, system_given=True) for system in national_id_systems),
    )
    patients = repository.match("Patient", [criterion], limit=_MAX_PATIENTS)
    return RecordSummary(patient_ids=tuple(patient.id for patient in patients))
