"""The front page: who is logged in, alerts, and the short lists a citizen looks for first.

`read_front_page` asks the database only for what the short lists show (the next
appointments, the latest vaccinations and the newest results: FHIR searches with
`_sort` and `_count`) and looks the medicines up to tell which are current; the access
log names exactly the entries shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from health.portal.access_log import EmergencyAccess
from health.portal.appointments import NOT_HAPPENING, AppointmentLine, appointments
from health.portal.datatypes import JsonDict, first_code
from health.portal.medications import MedicationLine, medication_card
from health.portal.record import CitizenRecords, Record
from health.portal.results import LabTest, latest_results
from health.portal.vaccinations import Vaccination, vaccinations

UPCOMING_SHOWN = 5
RESULTS_SHOWN = 6
VACCINATIONS_SHOWN = 5
# The newest results are read a page at a time, and no more than this many in all: a
# record whose newest 500 values name fewer tests shows the tests they name.
RESULTS_PER_READ = 100
RESULTS_READ = 500


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
    """The front page's lists from `record`."""
    now = now or datetime.now(UTC)
    return FrontPage(
        upcoming=[a for a in appointments(record, now) if a.upcoming][:UPCOMING_SHOWN],
        current_medications=medication_card(record, now).current,
        latest_results=latest_results(record, RESULTS_SHOWN),
        vaccinations=vaccinations(record)[:VACCINATIONS_SHOWN],
        emergencies=list(emergencies or []),
    )


def read_front_page(
    records: CitizenRecords,
    now: datetime,
    emergencies: list[EmergencyAccess] | None = None,
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
    record = records.with_sources([*found, *medicines.resources, *_newest_results(records)])
    page = front_page(record, now, emergencies)
    records.disclose(
        _key(report.resource) for line in page.current_medications for report in line.entry.reports
    )
    records.disclose(shown_results(page.latest_results))
    return record, page


def _newest_results(records: CitizenRecords) -> list[JsonDict]:
    """The newest Observations, newest first, until they name more tests than the page
    shows (so that the last test shown has all of its newest values, each source's copy
    among them), at most `RESULTS_READ` of them. Looked up: the page discloses the
    latest value of each test it shows."""

    def enough(found: list[JsonDict]) -> bool:
        return len({first_code(o.get("code")) for o in found} - {None}) > RESULTS_SHOWN

    return records.search_until(
        "Observation",
        [("_sort", "-date"), ("_count", str(RESULTS_PER_READ))],
        enough,
        max_pages=RESULTS_READ // RESULTS_PER_READ,
    )


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
