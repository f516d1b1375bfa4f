"""Bearer tokens on /fhir: 401 without a valid one, 403 beyond its scopes, and a
patient's token confined to that patient's record on every read path."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from health.auth.clients import ClientStore
from health.auth.grants import GrantStore
from health.db.engine import Database

FHIR_JSON = {"Accept": "application/fhir+json", "Content-Type": "application/fhir+json"}
REALM = 'Bearer realm="http://testserver/fhir"'


def _headers(token: str) -> dict[str, str]:
    return {**FHIR_JSON, "Authorization": f"Bearer {token}"}


def _create(client: TestClient, resource: dict[str, Any]) -> str:
    response = client.post(f"/fhir/{resource['resourceType']}", json=resource, headers=FHIR_JSON)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _ids(bundle: dict[str, Any]) -> set[str]:
    return {
        f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle.get("entry", [])
    }


@pytest.fixture
def two_patients(client: TestClient) -> dict[str, str]:
    """Patients A and B with an observation each, an organisation, and an orphan observation."""
    ids = {
        "A": _create(client, {"resourceType": "Patient", "name": [{"family": "Andersen"}]}),
        "B": _create(client, {"resourceType": "Patient", "name": [{"family": "Bech"}]}),
        "org": _create(client, {"resourceType": "Organization", "name": "Rigshospitalet"}),
    }
    for name in ("A", "B"):
        ids[f"obs{name}"] = _create(
            client,
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
                "subject": {"reference": f"Patient/{ids[name]}"},
                "performer": [{"reference": f"Organization/{ids['org']}"}],
            },
        )
    ids["orphan"] = _create(
        client,
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
        },
    )
    return ids


# 401: no token, or not a valid one


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/fhir/Patient/123"),
        ("GET", "/fhir/Patient"),
        ("POST", "/fhir/Patient"),
        ("POST", "/fhir"),
        ("GET", "/fhir/Patient/123/$everything"),
        ("GET", "/fhir/_history"),
        ("DELETE", "/fhir/Patient/123"),
    ],
)
def test_every_interaction_needs_a_token(
    anonymous_client: TestClient, method: str, path: str
) -> None:
    response = anonymous_client.request(method, path, headers=FHIR_JSON, content=b"{}")

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == REALM
    assert response.json()["resourceType"] == "OperationOutcome"


def test_the_capability_statement_needs_no_token(anonymous_client: TestClient) -> None:
    assert anonymous_client.get("/fhir/metadata", headers=FHIR_JSON).status_code == 200


def test_a_body_is_not_looked_at_before_the_caller_is_known(anonymous_client: TestClient) -> None:
    response = anonymous_client.post("/fhir/Patient", content=b"{not json", headers=FHIR_JSON)
    assert response.status_code == 401


@pytest.mark.parametrize(
    "authorization", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer    ", "token abc"]
)
def test_a_malformed_authorization_header_is_refused(
    anonymous_client: TestClient, authorization: str
) -> None:
    response = anonymous_client.get(
        "/fhir/Patient", headers={**FHIR_JSON, "Authorization": authorization}
    )
    assert response.status_code == 401
    assert 'error="invalid_request"' in response.headers["www-authenticate"]


def test_an_invalid_token_is_refused_with_the_reason(anonymous_client: TestClient) -> None:
    response = anonymous_client.get("/fhir/Patient", headers=_headers("e30.e30.c2ln"))

    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith(REALM)
    assert 'error="invalid_token"' in challenge


def test_a_token_whose_grant_was_revoked_is_refused(
    anonymous_client: TestClient, database: Database, issue_token: Callable[..., str]
) -> None:
    token = issue_token()
    assert anonymous_client.get("/fhir/Patient", headers=_headers(token)).status_code == 200
    with database.session(write=True) as session:
        grants = GrantStore(session)
        grant_id = next(iter(_grant_ids(session)))
        grants.revoke(grant_id)

    response = anonymous_client.get("/fhir/Patient", headers=_headers(token))
    assert response.status_code == 401
    assert "revoked" in response.json()["issue"][0]["diagnostics"]


def test_a_token_of_a_removed_client_is_refused(
    anonymous_client: TestClient, database: Database, issue_token: Callable[..., str]
) -> None:
    token = issue_token()
    assert anonymous_client.get("/fhir/Patient", headers=_headers(token)).status_code == 200
    with database.session(write=True) as session:
        assert ClientStore(session).remove("test-app")

    assert anonymous_client.get("/fhir/Patient", headers=_headers(token)).status_code == 401


def test_a_token_whose_caller_and_scopes_disagree_is_refused(
    anonymous_client: TestClient, issue_token: Callable[..., str]
) -> None:
    # A citizen's grant can never carry system scopes, however it was signed.
    token = issue_token(scope="system/*.read", actor_kind="citizen", patient_id="x")
    assert anonymous_client.get("/fhir/Patient", headers=_headers(token)).status_code == 401


def _grant_ids(session: Any) -> list[str]:
    from sqlalchemy import text

    return [row[0] for row in session.execute(text("SELECT id FROM auth_grant"))]


# 403: a valid token, but not for this


def test_scopes_decide_which_interactions_on_which_types(
    anonymous_client: TestClient, issue_token: Callable[..., str], two_patients: dict[str, str]
) -> None:
    # The clinician who wrote two_patients: consent lets them see all of it, so what is
    # refused here is refused by the scopes alone.
    token = issue_token(scope="user/Observation.rs", actor_kind="clinician")
    headers = _headers(token)

    assert anonymous_client.get("/fhir/Observation", headers=headers).status_code == 200
    read = anonymous_client.get(f"/fhir/Observation/{two_patients['obsA']}", headers=headers)
    assert read.status_code == 200
    refused = anonymous_client.get(f"/fhir/Patient/{two_patients['A']}", headers=headers)
    assert refused.status_code == 403
    assert 'error="insufficient_scope"' in refused.headers["www-authenticate"]
    assert refused.json()["issue"][0]["code"] == "forbidden"
    created = anonymous_client.post(
        "/fhir/Observation",
        json={"resourceType": "Observation", "status": "final", "code": {"text": "x"}},
        headers=headers,
    )
    assert created.status_code == 403


@pytest.mark.parametrize(
    ("scope", "types"),
    [
        ("user/Observation.rs", {"Observation"}),
        ("user/Observation.rs user/Patient.rs", {"Observation", "Patient"}),
    ],
)
def test_includes_of_types_beyond_the_scopes_are_dropped(
    anonymous_client: TestClient,
    issue_token: Callable[..., str],
    two_patients: dict[str, str],
    scope: str,
    types: set[str],
) -> None:
    # The clinician who wrote two_patients (their Patients are theirs to see): only the
    # scopes decide whether the included Patients come along.
    token = issue_token(scope=scope, actor_kind="clinician")
    response = anonymous_client.get(
        "/fhir/Observation?_include=Observation:subject", headers=_headers(token)
    )

    assert response.status_code == 200
    assert {i.split("/")[0] for i in _ids(response.json())} == types


def test_a_transaction_entry_beyond_the_scopes_fails_the_transaction(
    anonymous_client: TestClient, issue_token: Callable[..., str]
) -> None:
    token = issue_token(scope="user/Observation.c")
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {"resourceType": "Patient"},
                "request": {"method": "POST", "url": "Patient"},
            }
        ],
    }
    response = anonymous_client.post("/fhir", json=bundle, headers=_headers(token))
    assert response.status_code == 403


# A patient's token: their own record, and nothing of anyone else's


@pytest.fixture
def patient_a(issue_token: Callable[..., str], two_patients: dict[str, str]) -> dict[str, str]:
    token = issue_token(
        scope="patient/*.read",
        actor_kind="citizen",
        patient_id=two_patients["A"],
        fhir_user=f"Patient/{two_patients['A']}",
    )
    return _headers(token)


def test_a_patient_reads_their_own_record(
    anonymous_client: TestClient, patient_a: dict[str, str], two_patients: dict[str, str]
) -> None:
    own = anonymous_client.get(f"/fhir/Patient/{two_patients['A']}", headers=patient_a)
    assert own.status_code == 200
    observations = anonymous_client.get("/fhir/Observation", headers=patient_a).json()
    assert _ids(observations) == {f"Observation/{two_patients['obsA']}"}
    assert observations["total"] == 1


@pytest.mark.parametrize(
    "path",
    [
        "/fhir/Patient/{B}",
        "/fhir/Patient/{B}/_history/1",
        "/fhir/Patient/{B}/_history",
        "/fhir/Observation/{obsB}",
        "/fhir/Patient/{B}/$everything",
        "/fhir/Observation/{orphan}",
    ],
)
def test_another_patients_record_is_not_found(
    anonymous_client: TestClient,
    patient_a: dict[str, str],
    two_patients: dict[str, str],
    path: str,
) -> None:
    response = anonymous_client.get(path.format(**two_patients), headers=patient_a)
    assert response.status_code == 404


def test_searches_return_nothing_of_another_patient(
    anonymous_client: TestClient, patient_a: dict[str, str], two_patients: dict[str, str]
) -> None:
    for query in (
        f"Observation?subject=Patient/{two_patients['B']}",
        f"Observation?_id={two_patients['obsB']}",
        "Patient?family=Bech",
        f"Observation?_has:Observation:subject:_id={two_patients['obsB']}",
        f"Patient?_revinclude=Observation:subject&_id={two_patients['B']}",
    ):
        response = anonymous_client.get(f"/fhir/{query}", headers=patient_a)
        assert response.status_code in (200, 400), (query, response.text)
        if response.status_code == 200:
            assert _ids(response.json()) <= {
                f"Patient/{two_patients['A']}",
                f"Observation/{two_patients['obsA']}",
            }, query
    history = anonymous_client.get("/fhir/_history", headers=patient_a).json()
    assert {f"Patient/{two_patients['B']}", f"Observation/{two_patients['obsB']}"}.isdisjoint(
        _ids(history)
    )


def test_a_patient_sees_the_directory_around_their_record(
    anonymous_client: TestClient, patient_a: dict[str, str], two_patients: dict[str, str]
) -> None:
    response = anonymous_client.get(
        "/fhir/Observation?_include=Observation:performer", headers=patient_a
    )
    assert f"Organization/{two_patients['org']}" in _ids(response.json())


def test_a_batch_read_of_another_patient_is_not_found(
    anonymous_client: TestClient, patient_a: dict[str, str], two_patients: dict[str, str]
) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "GET", "url": f"Patient/{two_patients['A']}"}},
            {"request": {"method": "GET", "url": f"Patient/{two_patients['B']}"}},
        ],
    }
    response = anonymous_client.post("/fhir", json=bundle, headers=patient_a)

    statuses = [e["response"]["status"] for e in response.json()["entry"]]
    assert statuses[0].startswith("200")
    assert statuses[1].startswith("404")


def test_a_patient_writes_only_into_their_own_record(
    anonymous_client: TestClient, issue_token: Callable[..., str], two_patients: dict[str, str]
) -> None:
    token = issue_token(scope="patient/*.cruds", actor_kind="citizen", patient_id=two_patients["A"])

    def observation_about(patient: str) -> dict[str, Any]:
        return {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "Home blood pressure"},
            "subject": {"reference": f"Patient/{patient}"},
        }

    own = anonymous_client.post(
        "/fhir/Observation", json=observation_about(two_patients["A"]), headers=_headers(token)
    )
    assert own.status_code == 201
    other = anonymous_client.post(
        "/fhir/Observation", json=observation_about(two_patients["B"]), headers=_headers(token)
    )
    assert other.status_code == 403
    orphan = anonymous_client.post(
        "/fhir/Observation",
        json={"resourceType": "Observation", "status": "final", "code": {"text": "x"}},
        headers=_headers(token),
    )
    assert orphan.status_code == 403
    overwrite = anonymous_client.put(
        f"/fhir/Observation/{two_patients['obsB']}",
        json={**observation_about(two_patients["A"]), "id": two_patients["obsB"]},
        headers=_headers(token),
    )
    # B's observation is invisible to A: the update cannot see it, and the id is taken.
    assert overwrite.status_code in (403, 404, 409)


def test_a_patient_token_gets_its_own_record_from_patient_everything(
    anonymous_client: TestClient, patient_a: dict[str, str], two_patients: dict[str, str]
) -> None:
    response = anonymous_client.get("/fhir/Patient/$everything", headers=patient_a)

    assert response.status_code == 200
    assert _ids(response.json()) == {
        f"Patient/{two_patients['A']}",
        f"Observation/{two_patients['obsA']}",
        f"Organization/{two_patients['org']}",
    }
