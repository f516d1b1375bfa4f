"""Searches confined to one patient's compartment, and only when that is safe."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from health.fhir.config import FhirConfig
from health.fhir.search.params import SearchLimits, parse_search
from health.fhir.search.scope import confine_to_patient
from health.settings import Settings

BASE = "http://t/fhir"
config = FhirConfig.load(Settings(base_url="http://t"))
FHIR_JSON = {"Content-Type": "application/fhir+json"}


def _patient(resource_type: str, *pairs: tuple[str, str]) -> str | None:
    request = parse_search(
        resource_type, list(pairs), config.search, base_url=BASE, limits=SearchLimits(50, 100)
    )
    return confine_to_patient(request, config.search, config.compartment).patient


@pytest.mark.parametrize(
    ("resource_type", "pairs", "patient"),
    [
        ("Observation", (("patient", "p1"),), "p1"),
        ("Observation", (("subject", "Patient/p1"),), "p1"),
        ("Observation", (("subject:Patient", "p1"),), "p1"),
        ("Observation", (("subject", f"{BASE}/Patient/p1"),), "p1"),
        ("Encounter", (("patient", "p1"), ("_sort", "-date")), "p1"),
        # A bare id of a parameter that may name a Group or Device is not a patient.
        ("Observation", (("subject", "p1"),), None),
        # performer is not the element that decides the compartment.
        ("Observation", (("performer", "Patient/p1"),), None),
        # Two patients, or a patient found through a chain: not one compartment.
        ("Observation", (("patient", "p1,p2"),), None),
        ("Observation", (("subject:Patient.name", "Hansen"),), None),
        # Patient.link names other patients; a Patient owns only itself.
        ("Patient", (("link", "Patient/p1"),), None),
    ],
)
def test_a_search_is_confined_only_when_its_owner_element_pins_a_patient(
    resource_type: str, pairs: tuple[tuple[str, str], ...], patient: str | None
) -> None:
    assert _patient(resource_type, *pairs) == patient


def test_confined_and_unconfined_searches_find_the_same_resources(client: TestClient) -> None:
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
        "subject": {"reference": "Patient/owner"},
        "performer": [{"reference": "Patient/helper"}],
    }
    for patient_id in ("owner", "helper"):
        client.put(
            f"/fhir/Patient/{patient_id}",
            json={"resourceType": "Patient", "id": patient_id},
            headers=FHIR_JSON,
        )
    created = client.post("/fhir/Observation", json=observation, headers=FHIR_JSON).json()

    def found(query: str) -> list[str]:
        bundle = client.get(f"/fhir/Observation?{query}").json()
        return [entry["resource"]["id"] for entry in bundle.get("entry", [])]

    assert found("patient=owner&code=http://loinc.org|718-7") == [created["id"]]
    assert found("performer=Patient/helper&code=718-7") == [created["id"]]
    assert found("patient=helper") == []
