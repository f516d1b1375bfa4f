"""What each kind of caller may see, as plain data the repository applies in SQL.

The rules (docs/ACCESS.md has them in prose, with their reasons):

- The system (ingest, seeding, maintenance) sees everything.
- A citizen sees their own record; a proxy (a parent, a holder of a power of
  attorney) sees the record of the citizen they act for, as that citizen would.
- A hospital's or GP's client sees what its organisation recorded, and the Patient of
  each citizen it recorded something for.
- A clinician sees a citizen's record when one of their parties (themselves, their
  organisations) treats the citizen (a care relationship within the window) or
  recorded the entry, unless the citizen's consent denies it: a block of the
  clinician or organisation (optionally only some resource types, or resources
  carrying a security label), or an episode the citizen hid (hidden from every
  organisation but the one that recorded it). Under opt-in, treating is not enough:
  the citizen must also have permitted one of the clinician's parties. An active
  emergency access ("break the glass") for the citizen overrides all of this.
- An auditor reads the access log, and no patient data.
- Every caller sees the shared directory (organisations, clinicians, places), and
  anything outside every compartment that they recorded themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from health.settings import Settings

# Resources about no one in particular: the directory of organisations, clinicians and
# places, and medication definitions. A citizen's app reads them beside the citizen's
# own record (to show who treated them, where, with what). A resource of any other
# type outside every patient's compartment stays hidden from citizens, so that data
# pushed without a subject never reaches every patient.
SHARED_DIRECTORY_TYPES = frozenset(
    {
        "Organization",
        "Practitioner",
        "PractitionerRole",
        "Location",
        "HealthcareService",
        "Endpoint",
        "Medication",
    }
)


class Policy(StrEnum):
    opt_out = "opt-out"
    opt_in = "opt-in"


class Purpose(StrEnum):
    """Why data was disclosed, as the access log records it."""

    treatment = "treatment"
    emergency = "emergency"
    self = "self"
    proxy = "proxy"
    operations = "operations"
    audit = "audit"


@dataclass(frozen=True)
class CareRules:
    """The settings the clinician rules depend on."""

    policy: Policy = Policy.opt_out
    treatment_window: timedelta = timedelta(days=365)
    break_glass: timedelta = timedelta(hours=2)

    def window_start(self, now: datetime) -> datetime:
        """Relationships that ended before this no longer count."""
        return now - self.treatment_window


def care_rules(settings: Settings) -> CareRules:
    """The rules as configured (HEALTH_ACCESS_POLICY, HEALTH_TREATMENT_WINDOW_DAYS,
    HEALTH_BREAK_GLASS_HOURS)."""
    return CareRules(
        policy=Policy(settings.access_policy),
        treatment_window=timedelta(days=settings.treatment_window_days),
        break_glass=timedelta(hours=settings.break_glass_hours),
    )


def is_organisation_record(recorded_by: str | None) -> bool:
    """Whether an entry comes from a source system (or the system itself): only such
    entries establish facts others rely on, such as care relationships and roles."""
    return recorded_by is None or recorded_by.startswith("Organization/")
