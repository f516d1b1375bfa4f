"""The front page: who is logged in, alerts, and the short lists a citizen looks for first.

`read_front_page` asks the database only for what the short lists show (the next
appointments and the latest vaccinations: FHIR searches with `_sort` and `_count`),
looks the medicines up to tell which are current, and takes the newest results from
a cached view of every result (health/portal/view_cache.py); the access log names
exactly the entries shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from health.portal.access_log import EmergencyAccess
from health.portal.appointments import NOT_HAPPENING, AppointmentLine, appointments
from health.portal.datatypes import JsonDict
from health.portal.medications import MedicationLine, medication_card
from health.portal.record import CitizenRecords, Record
from health.portal.results import LabTest, latest_results
from health.portal.vaccinations import Vaccination, vaccinations
from health.portal.view_cache import CachedView, ViewCache, view_key

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
    latest: list[LabTest] | None = None,
) -> FrontPage:
    """The front page's lists from `record` (the latest results from `latest`, if given)."""
    now = now or datetime.now(UTC)
    return FrontPage(
        upcoming=[a for a in appointments(record, now) if a.upcoming][:UPCOMING_SHOWN],
        current_medications=medication_card(record, now).current,
        latest_results=latest_results(record, RESULTS_SHOWN) if latest is None else latest,
        vaccinations=vaccinations(record)[:VACCINATIONS_SHOWN],
        emergencies=list(emergencies or []),
    )


def read_front_page(
    records: CitizenRecords,
    now: datetime,
    emergencies: list[EmergencyAccess] | None = None,
    cache: ViewCache | None = None,
) -> tuple[Record, FrontPage]:
    """The front page of the record `records` reads, and the resources it shows."""
    moment = now.replace(microsecond=0).isoformat()
    found = [
        *records.search(
            "Appointment",
            [
                ("date", f"ge{moment}"),
                *(("status:not", status) for status in sorted(NOT_HAPPENING)),
                ("_sort", "date"),
                ("_count", str(UPCOMING_SHOWN)),
            ],
        ),
        *records.search(
            "Immunization",
            [
                ("status:not", "entered-in-error"),
                ("date:missing", "false"),
                ("_sort", "-date"),
                ("_count", str(VACCINATIONS_SHOWN)),
            ],
        ),
    ]
    # Which medicines are current depends on every prescription of each: looked up,
    # and only the current ones' entries disclosed.
    medicines = records.load(types=("MedicationRequest", "MedicationStatement"), disclose=False)
    record = records.with_sources([*found, *medicines.resources])
    results = _latest_results(records, now, cache)
    page = front_page(record, now, emergencies, latest=results.view)
    records.disclose(
        _key(report.resource) for line in page.current_medications for report in line.entry.reports
    )
    records.disclose(shown_results(page.latest_results), results.looked_up)
    return record, page


def _latest_results(records: CitizenRecords, now: datetime, cache: ViewCache | None) -> CachedView:
    """The newest tests, shaped from every result the reader may see: cached while the
    record is unchanged. (A FHIR search `Observation?_sort=-date&_count=6` would read
    less, but the search's sort costs seconds on SQLite at 4,000 results: see
    docs/BENCHMARKS.md, "Portal".)"""

    def shape() -> CachedView:
        observations = records.load(types=("Observation",), disclose=False)
        return CachedView(
            view=latest_results(observations, RESULTS_SHOWN),
            looked_up=records.looked_up(),
            weight=len(observations.resources),
        )

    stamp = records.stamp() if cache is not None else None
    if cache is None or stamp is None or records.actor is None or records.patient_id is None:
        return shape()
    key = view_key("latest-results", records.actor, records.patient_id, stamp, now)
    return cache.get_or_shape(key, shape)


def shown_results(tests: list[LabTest]) -> set[str]:
    """`Type/id` of what the front page shows of each test: each series' latest value."""
    return {
        _key(report.resource)
        for test in tests
        for series in test.series
        if series.latest is not None
        for report in series.latest.entry.reports
    }


def _key(resource: JsonDict) -> str:
    return f"{resource.get('resourceType')}/{resource.get('id')}"
