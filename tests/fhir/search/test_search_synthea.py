"""Search over real Synthea records: counts per type equal the source Bundles'."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

FHIR_JSON = {"Content-Type": "application/fhir+json"}
PATIENT_FILES = (
    "Antonio_Castellanos_6d2eba67-5b4a-403f-a29f-e6da3f1ea963.json",
    "Denny_Bins_bc0fbd67-bfe3-46c8-8ce9-ef20b0705b46.json",
    "Wendy_Littel_e52450ac-3b5b-433c-9ece-2f6dbc61ef97.json",
)
# Types that are not part of a patient's record (shared directory resources).
DIRECTORY = {"Organization", "Practitioner", "Location", "PractitionerRole", "Medication"}


def _load(client: TestClient, path: Path) -> tuple[str, Counter[str]]:
    bundle = orjson.loads(path.read_bytes())
    response = client.post("/fhir", content=path.read_bytes(), headers=FHIR_JSON)
    assert response.status_code == 200, response.text[:500]
    patient_id = next(
        entry["response"]["location"].split("/")[1]
        for entry in response.json()["entry"]
        if entry["response"]["location"].startswith("Patient/")
    )
    counts = Counter(
        entry["resource"]["resourceType"]
        for entry in bundle["entry"]
        if entry["resource"]["resourceType"] not in DIRECTORY | {"Patient"}
    )
    return patient_id, counts


def _count(client: TestClient, resource_type: str, patient_id: str) -> Any:
    response = client.get(
        f"/fhir/{resource_type}", params={"patient": patient_id, "_summary": "count"}
    )
    assert response.status_code == 200, response.text
    return response.json()["total"]


@pytest.mark.shared_data
def test_counts_per_type_from_search_equal_each_patients_bundle(
    client: TestClient, shared_data: Path
) -> None:
    folder = shared_data / "synthea" / "smart-r4-synthea-2019"
    loaded = [_load(client, folder / name) for name in PATIENT_FILES]

    for patient_id, expected in loaded:
        found = {
            resource_type: _count(client, resource_type, patient_id) for resource_type in expected
        }
        assert found == dict(expected)


@pytest.mark.shared_data
def test_lab_results_of_one_patient_in_a_date_range_page_in_order(
    client: TestClient, shared_data: Path
) -> None:
    path = shared_data / "synthea" / "smart-r4-synthea-2019" / PATIENT_FILES[1]
    patient_id, _ = _load(client, path)
    bundle = orjson.loads(path.read_bytes())
    expected = sorted(
        (entry["resource"]["effectiveDateTime"], entry["resource"]["code"]["coding"][0]["code"])
        for entry in bundle["entry"]
        if entry["resource"]["resourceType"] == "Observation"
        and any(
            coding.get("code") == "laboratory"
            for category in entry["resource"].get("category", [])
            for coding in category.get("coding", [])
        )
        and "2014-01-01" <= entry["resource"]["effectiveDateTime"][:10] < "2017-01-01"
    )
    assert expected, "the test patient has lab results in the range"

    found: list[tuple[str, str]] = []
    url: str | None = (
        f"/fhir/Observation?patient={patient_id}&category=laboratory"
        "&date=ge2014-01-01&date=lt2017-01-01&_sort=date&_count=7"
    )
    while url:
        page = client.get(url).json()
        found += [
            (e["resource"]["effectiveDateTime"], e["resource"]["code"]["coding"][0]["code"])
            for e in page.get("entry", [])
        ]
        url = next((link["url"] for link in page["link"] if link["relation"] == "next"), None)

    assert [when for when, _ in found] == sorted(when for when, _ in found)
    assert sorted(found) == expected
