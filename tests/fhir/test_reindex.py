"""health reindex: the index rebuilt from the stored resources."""

from __future__ import annotations

from fastapi.testclient import TestClient

from health.db.engine import Database
from health.db.repository import Repository
from health.db.versions import StoredVersion, Write
from health.fhir.config import FhirConfig
from health.fhir.criteria import Criterion, Token
from health.fhir.reindex import reindex
from health.settings import Settings

FHIR_JSON = {"Content-Type": "application/fhir+json"}


def _identifier_matches(database: Database, value: str) -> list[str]:
    criterion = Criterion("identifier", (Token("urn:test", value, True),))
    with database.session(write=False) as session:
        found = Repository.system(session).match("Patient", [criterion], limit=5)
    return [version.id for version in found]


def _without_index(version: StoredVersion) -> Write:
    return Write(
        resource_type=version.resource_type,
        id=version.id,
        version_id=version.version_id,
        last_updated=version.last_updated,
        method=version.method,
        body=version.body,
    )


def test_reindex_restores_a_lost_index_and_counts_what_it_did(
    client: TestClient, database: Database, settings: Settings
) -> None:
    created = client.post(
        "/fhir/Patient",
        json={"resourceType": "Patient", "identifier": [{"system": "urn:test", "value": "42"}]},
        headers=FHIR_JSON,
    )
    patient_id = created.json()["id"]
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "weight"},
        "subject": {"reference": f"Patient/{patient_id}"},
    }
    client.post("/fhir/Observation", json=observation, headers=FHIR_JSON)
    with database.session(write=True) as session:
        repository = Repository.system(session)
        # An index built by other definitions: here, none at all.
        page = repository.current_page(resource_type="Patient", after=None, limit=10)
        repository.replace_index([_without_index(version) for version in page])
    assert _identifier_matches(database, "42") == []

    counts = reindex(database, FhirConfig.load(settings))

    assert counts == {"Patient": 1, "Observation": 1}
    assert _identifier_matches(database, "42") == [patient_id]
