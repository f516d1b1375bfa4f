"""The front page reads only what it shows; the timeline logs only the page it shows."""

from __future__ import annotations

import re

from health.audit.log import AuditLog
from health.db.repository import Repository
from health.fhir.bundle_request import parse_bundle
from health.fhir.config import FhirConfig
from health.fhir.interactions import Interactions
from health.ingest.bulk import source_actor
from health.ingest.pipeline import push_bundle
from health.portal.front_page import RESULTS_SHOWN, shown_results
from health.portal.record import Record
from health.portal.results import latest_results
from tests.portal.conftest import CPR_SYSTEM, ERIK, Portal


def _looks(portal: Portal, patient_id: str) -> dict[int, set[str]]:
    """The portal looks at a citizen's record in the access log: seq -> entities."""
    with portal.app.state.database.session(write=False) as session:
        rows = AuditLog(session, portal.settings.audit_key.encode()).for_patient(
            patient_id, limit=500
        )
    return {row.seq: set(row.entry.entities) for row in rows if row.entry.action == "portal"}


def _newest_look(portal: Portal, patient_id: str, before: dict[int, set[str]]) -> set[str]:
    new = [entities for seq, entities in _looks(portal, patient_id).items() if seq not in before]
    assert len(new) == 1, new
    return new[0]


def test_the_front_page_logs_the_entries_it_shows(demo_portal: Portal) -> None:
    erik = demo_portal.browser()
    erik.login(ERIK)
    patient_id = demo_portal.patient_id(ERIK)
    before = _looks(demo_portal, patient_id)
    page = erik.home()
    assert page.status_code == 200
    shown = _newest_look(demo_portal, patient_id, before)
    links = set(re.findall(r'href="/portal/results/([^"]+)"', page.text))
    observations = {e for e in shown if e.startswith("Observation/")}
    # One value per test shown (each source's copy of it), not the tests' histories.
    assert 0 < len(links) <= RESULTS_SHOWN and len(links) <= len(observations) <= 2 * len(links)
    assert {e.split("/")[0] for e in shown} <= {
        "Appointment",
        "Observation",
        "Immunization",
        "MedicationRequest",
        "MedicationStatement",
    }


def _push_encounter(portal: Portal, day: str) -> None:
    config = FhirConfig.load(portal.settings)
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:0f6e3c3e-0000-4000-8000-000000000002",
                "resource": {
                    "resourceType": "Patient",
                    "identifier": [{"system": CPR_SYSTEM, "value": ERIK}],
                },
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "fullUrl": "urn:uuid:0f6e3c3e-0000-4000-8000-000000000001",
                "resource": {
                    "resourceType": "Encounter",
                    "status": "finished",
                    "class": {"code": "AMB"},
                    "type": [{"text": "Brand new contact"}],
                    "subject": {"reference": "urn:uuid:0f6e3c3e-0000-4000-8000-000000000002"},
                    "period": {"start": f"{day}T09:00:00+00:00"},
                },
                "request": {"method": "POST", "url": "Encounter"},
            },
        ],
    }
    with portal.app.state.database.session(write=True) as session:
        interactions = Interactions(
            Repository(session, source_actor("nordhavn", "Nordhavn Hospital")), config
        )
        parsed = parse_bundle(
            bundle, config.types, base=portal.settings.fhir_base_url, max_entries=3
        )
        push_bundle(interactions, parsed, base=portal.settings.fhir_base_url, prefer=None)


def test_the_timeline_logs_its_page_and_shows_what_was_written_since(
    demo_portal: Portal,
) -> None:
    erik = demo_portal.browser()
    erik.login(ERIK)
    patient_id = demo_portal.patient_id(ERIK)
    first = erik.client.get("/portal/timeline", params={"page": 1})
    assert first.status_code == 200 and "Brand new contact" not in first.text
    before = _looks(demo_portal, patient_id)
    again = erik.client.get("/portal/timeline", params={"page": 1})
    assert again.text.count("<article") == first.text.count("<article")
    shown = _newest_look(demo_portal, patient_id, before)
    assert shown and all(not e.startswith("Patient/") for e in shown)
    _push_encounter(demo_portal, "2099-01-01")
    assert "Brand new contact" in erik.client.get("/portal/timeline").text


def test_the_front_page_names_the_latest_value_of_each_test_it_shows() -> None:
    record = Record.of(
        "p1",
        [
            {
                "resourceType": "Observation",
                "id": f"o{number}",
                "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                "effectiveDateTime": when,
                "valueQuantity": {"value": number},
            }
            for number, code, when in [
                (1, "hba1c", "2024-05-01"),
                (2, "hba1c", "2024-04-01"),
                (3, "ldl", "2024-03-01"),
                (4, "crp", "2023-01-01"),
            ]
        ],
    )
    assert shown_results(latest_results(record, 2)) == {"Observation/o1", "Observation/o3"}
