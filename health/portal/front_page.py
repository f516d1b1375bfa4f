"""The front page: who is logged in, alerts, and the short lists a citizen looks for first."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from health.portal.access_log import EmergencyAccess
from health.portal.appointments import AppointmentLine, appointments
from health.portal.medications import MedicationLine, medication_card
from health.portal.record import Record
from health.portal.results import LabTest, latest_results
from health.portal.vaccinations import Vaccination, vaccinations

UPCOMING_SHOWN = 5
RESULTS_SHOWN = 6
VACCINATIONS_SHOWN = 5


@dataclass(frozen=True)
class Alert:
    """Something the citizen should see first (an emergency access, new results)."""

    kind: str
    text: str
    link: str = ""


@dataclass(frozen=True)
class FrontPage:
    upcoming: list[AppointmentLine]
    current_medications: list[MedicationLine]
    latest_results: list[LabTest]
    vaccinations: list[Vaccination]
    # Clinicians who broke the glass to the record lately: shown first, prominently.
    emergencies: list[EmergencyAccess] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)


def front_page(
    record: Record,
    now: datetime | None = None,
    emergencies: list[EmergencyAccess] | None = None,
) -> FrontPage:
    now = now or datetime.now(UTC)
    return FrontPage(
        upcoming=[a for a in appointments(record, now) if a.upcoming][:UPCOMING_SHOWN],
        current_medications=medication_card(record, now).current,
        latest_results=latest_results(record, RESULTS_SHOWN),
        vaccinations=vaccinations(record)[:VACCINATIONS_SHOWN],
        emergencies=list(emergencies or []),
    )
