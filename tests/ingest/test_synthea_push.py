"""Every Synthea file pushed by two sources: one record per person, nothing lost, nothing
duplicated, provenance for every push; pushing it all again changes versions, not counts."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

pytestmark = pytest.mark.shared_data

SSN = "http://hl7.org/fhir/sid/us-ssn"
DIRECTORY = ("Organization", "Practitioner", "Location")
FHIR_JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
# tests/conftest.py: the stored records, read as the system.
StoredRecords = Any


def _files(shared_data: Path) -> list[Path]:
    """Providers first (the 2021 patients refer to them by identifier), then patients."""
    synthea = shared_data / "synthea"
    providers = sorted(synthea.glob("*/*Information*.json"))
    patients = sorted(p for p in synthea.glob("*/*.json") if p not in providers)
    return [*providers, *patients]


def _expected(files: list[Path]) -> tuple[Counter[str], set[str]]:
    """Per type, how many resources two sources' pushes should leave; and the people."""
    per_source: Counter[str] = Counter()
    directory: set[tuple[str, str]] = set()
    people: set[str] = set()
    for path in files:
        for entry in orjson.loads(path.read_bytes())["entry"]:
            resource = entry["resource"]
            kind = resource["resourceType"]
            if kind == "Patient":
                people |= {i["value"] for i in resource["identifier"] if i.get("system") == SSN}
            elif kind in DIRECTORY:
                first = resource["identifier"][0]
                directory.add((kind, f"{first['system']}|{first['value']}"))
            else:
                per_source[kind] += 1
    expected = Counter({kind: 2 * count for kind, count in per_source.items()})
    expected.update(kind for kind, _ in directory)
    expected["Patient"] = len(people)
    return expected, people


def test_every_synthea_file_from_two_sources(
    sources: dict[str, Any], shared_data: Path, stored: StoredRecords
) -> None:
    files = _files(shared_data)
    expected, people = _expected(files)
    for source in sources.values():
        for path in files:
            source.pushed(path.read_bytes())

    hospital, gp = sources["hospital"], sources["gp"]
    counts = {kind: stored.total(kind) for kind in expected}
    # Provenance: the 2021 files carry some of their own, and every push adds ours.
    ours = {
        name: stored.total(f"Provenance?agent=Organization/{s.organization_id}")
        for name, s in sources.items()
    }
    assert {kind: counts[kind] for kind in expected if kind != "Provenance"} == {
        kind: n for kind, n in expected.items() if kind != "Provenance"
    }
    assert counts["Provenance"] == expected["Provenance"] + sum(ours.values())
    assert all(n >= len(files) for n in ours.values()), ours
    for ssn in people:
        assert stored.total(f"Patient?identifier={SSN}|{ssn}") == 1

    for path in files:
        hospital.pushed(path.read_bytes())

    assert {kind: stored.total(kind) for kind in expected if kind != "Provenance"} == {
        kind: n for kind, n in counts.items() if kind != "Provenance"
    }
    versions = Counter(e["meta"]["versionId"] for e in stored.resources("Encounter?_count=1000"))
    # The hospital's encounters are at version 2 now, the GP's still at 1.
    assert versions["2"] == versions["1"] == expected["Encounter"] // 2
    # Each source reads back its own encounters, and not the other's of the same people.
    for source, version in ((hospital, "2"), (gp, "1")):
        response = source.client.get(
            "/fhir/Encounter", params={"_count": "1000"}, headers=source.headers
        )
        assert response.status_code == 200, response.text
        own = [e["resource"]["meta"] for e in response.json()["entry"]]
        assert len(own) == expected["Encounter"] // 2
        assert {(m["source"], m["versionId"]) for m in own} == {(source.uri, version)}


def test_sources_pushing_one_citizen_at_once_make_one_patient(
    live_server: Any, stored: StoredRecords
) -> None:
    """Several sources, each on its own connection, released together."""
    clients = 4
    barrier = threading.Barrier(clients)
    cpr = "urn:oid:1.2.208.176.1.2"

    def push(number: int) -> httpx.Response:
        token = live_server.token(
            scope="system/*.cruds",
            actor_kind="client",
            client_id=f"source-{number}",
            organization_id=f"organization-{number}",
        )
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "fullUrl": "urn:uuid:3f2504e0-4f89-11d3-9a0c-0305e82c3301",
                    "resource": {
                        "resourceType": "Patient",
                        "identifier": [
                            {"system": cpr, "value": "0202024321"},
                            {"system": f"urn:source:{number}", "value": "x"},
                        ],
                    },
                    "request": {"method": "POST", "url": "Patient"},
                },
                {
                    "resource": {
                        "resourceType": "Observation",
                        "status": "final",
                        "code": {"text": f"from source {number}"},
                        "subject": {"reference": "urn:uuid:3f2504e0-4f89-11d3-9a0c-0305e82c3301"},
                    },
                    "request": {"method": "POST", "url": "Observation"},
                },
            ],
        }
        headers = {**FHIR_JSON, "Authorization": f"Bearer {token}"}
        with httpx.Client(timeout=60) as http:
            barrier.wait(timeout=30)
            return http.post(live_server.fhir_url, json=bundle, headers=headers)

    with ThreadPoolExecutor(max_workers=clients) as pool:
        responses = list(pool.map(push, range(clients)))

    assert [r.status_code for r in responses] == [200] * clients, [r.text for r in responses]
    (patient,) = stored.resources(f"Patient?identifier={cpr}|0202024321")
    # No source's identifier was lost to another's concurrent merge.
    assert {f"urn:source:{n}" for n in range(clients)} <= {
        i["system"] for i in patient["identifier"]
    }
    assert stored.total(f"Observation?subject=Patient/{patient['id']}") == clients
