"""health import: folders of Bundles and NDJSON through the push path, resumable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from health.db.engine import Database
from health.fhir.config import FhirConfig
from health.ingest.bulk import Importer, ImportRefused, find_files, find_source
from health.settings import Settings

CPR = "urn:oid:1.2.208.176.1.2"
FHIR_JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
# tests/conftest.py: the stored records, read as the system.
StoredRecords = Any


def _write(path: Path, content: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else orjson.dumps(content))
    return path


def _ndjson(*resources: dict[str, Any]) -> bytes:
    return b"\n".join(orjson.dumps(r) for r in resources) + b"\n"


@pytest.fixture
def hospital(client: TestClient) -> str:
    response = client.post(
        "/fhir/Organization",
        json={
            "resourceType": "Organization",
            "identifier": [{"system": "urn:oid:1.2.208.176.1.1", "value": "4000"}],
            "name": "Hvidovre Hospital",
        },
        headers=FHIR_JSON,
    )
    assert response.status_code == 201
    return "urn:oid:1.2.208.176.1.1|4000"


@pytest.fixture
def importer(database: Database, settings: Settings, hospital: str) -> Importer:
    config = FhirConfig.load(settings)
    return Importer(database, config, find_source(database, config, hospital))


def _observation(subject: str, text: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": text},
        "subject": {"reference": subject},
        **extra,
    }


def _folder(root: Path) -> Path:
    _write(
        root / "bundles" / "admission.json",
        {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "fullUrl": "urn:uuid:6a4fbd6e-2a3b-4fa4-9d4e-7c6f0c0d1a01",
                    "resource": {
                        "resourceType": "Patient",
                        "id": "k1",
                        "identifier": [{"system": CPR, "value": "1111111118"}],
                    },
                    "request": {"method": "POST", "url": "Patient"},
                },
                {
                    "resource": _observation(
                        "urn:uuid:6a4fbd6e-2a3b-4fa4-9d4e-7c6f0c0d1a01", "Admission weight"
                    ),
                    "request": {"method": "POST", "url": "Observation"},
                },
            ],
        },
    )
    _write(
        root / "export" / "Patient.ndjson",
        _ndjson(
            {
                "resourceType": "Patient",
                "id": "n1",
                "identifier": [{"system": CPR, "value": "2222222226"}],
            },
            {"resourceType": "Patient", "id": "n2", "name": [{"family": "Uden CPR"}]},
        ),
    )
    _write(
        root / "export" / "Observation.ndjson",
        _ndjson(
            _observation("Patient/n1", "Blood pressure", id="o1"),
            # Refused as it runs, between two lines its batch writes together.
            _observation("Patient/nobody", "Temperature", id="o3"),
            _observation("Patient/n1", "Pulse", id="o2"),
        ),
    )
    _write(root / "export" / "Broken.ndjson", b'{"resourceType": "Observation"}\n{not json\n')
    return root


def test_the_source_must_be_a_known_organization(
    database: Database, settings: Settings, hospital: str
) -> None:
    config = FhirConfig.load(settings)
    with pytest.raises(ImportRefused, match=r"SYSTEM\|VALUE"):
        find_source(database, config, "no-bar")
    with pytest.raises(ImportRefused, match="no Organization"):
        find_source(database, config, "urn:oid:1.2.208.176.1.1|9999")
    assert find_source(database, config, hospital).display == "import as Hvidovre Hospital"


def test_patients_and_providers_load_first(tmp_path: Path) -> None:
    root = _folder(tmp_path)
    _write(
        root / "bundles" / "a-providers.json",
        {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [
                {
                    "resource": {"resourceType": "Organization", "name": "X"},
                    "request": {"method": "POST", "url": "Organization"},
                }
            ],
        },
    )
    order = [p.name for p in find_files([root])]
    assert order[0] == "Patient.ndjson"
    assert order[1] == "a-providers.json"
    with pytest.raises(ImportRefused, match="does not exist"):
        find_files([root / "missing"])


def test_an_import_loads_everything_and_reports_what_it_refused(
    importer: Importer, tmp_path: Path, stored: StoredRecords
) -> None:
    root = _folder(tmp_path)
    summary = importer.run(find_files([root]))

    assert summary.files_imported == 3
    assert summary.resources["Patient"] == 2
    assert summary.resources["Observation"] == 3
    assert summary.resources["Provenance"] >= 3
    refused = {(Path(r.path).name, r.position) for r in summary.rejected}
    assert ("Patient.ndjson", "line 2") in refused
    assert ("Observation.ndjson", "line 2") in refused
    assert ("Broken.ndjson", "file") in refused
    reasons = {Path(r.path).name: r.reason for r in summary.rejected}
    assert "national ID" in reasons["Patient.ndjson"]
    assert "matches no resource" in reasons["Observation.ndjson"]
    assert "line 2" in reasons["Broken.ndjson"]
    # The NDJSON observations found their patient by the source's id for it.
    (patient,) = stored.resources(f"Patient?identifier={CPR}|2222222226")
    assert stored.total(f"Observation?subject=Patient/{patient['id']}") == 2


def test_running_an_import_again_skips_what_it_loaded(
    importer: Importer, tmp_path: Path, stored: StoredRecords
) -> None:
    root = _folder(tmp_path)
    first = importer.run(find_files([root]))
    again = importer.run(find_files([root]))

    assert again.files_skipped == first.files_imported == 3
    # Broken.ndjson was refused whole: it is tried again, and refused again.
    assert again.files_imported == 0
    assert [Path(r.path).name for r in again.rejected] == ["Broken.ndjson"]
    assert stored.total("Observation") == 3
