"""The basic read-after-write loop over HTTP."""

from fastapi.testclient import TestClient

FHIR_JSON = {"Content-Type": "application/fhir+json"}


def test_create_then_read_returns_the_stored_resource(client: TestClient) -> None:
    created = client.post(
        "/fhir/Patient",
        json={"resourceType": "Patient", "name": [{"family": "Jensen"}]},
        headers=FHIR_JSON,
    )
    assert created.status_code == 201, created.text
    patient_id = created.json()["id"]
    assert created.headers["ETag"] == 'W/"1"'
    assert created.headers["Location"].endswith(f"/fhir/Patient/{patient_id}/_history/1")

    read = client.get(f"/fhir/Patient/{patient_id}")
    assert read.status_code == 200
    assert read.json()["name"] == [{"family": "Jensen"}]
    assert read.json()["meta"]["versionId"] == "1"
