"""The logged-in citizen's record as the portal shows it: for now, whether it exists."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from health.auth.identity import with_national_id

# Pushes keep one Patient per national ID (health/ingest); records written another way
# may still hold more, and a handful is plenty to say so.
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

    As the system because the portal has no actor of its own yet: a citizen actor is
    confined to one Patient, and this lookup is what finds that Patient. The consent
    issue brings the portal's citizen actor. Only Patient ids leave this function.
    """
    patients = with_national_id(
        session, "Patient", national_id, national_id_systems, limit=_MAX_PATIENTS
    )
    return RecordSummary(patient_ids=tuple(patient.id for patient in patients))
