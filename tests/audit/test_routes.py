"""GET /fhir/AuditEvent with real tokens: the citizen sees their own log and nobody
else's, an auditor's client sees all of it, everyone else is refused, nobody writes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from fhir.resources.R4B.bundle import Bundle

from health.access.actor import ActorKind
from health.auth.backend_client import BackendKey, request_token
from health.auth.clients import ClientStore
from health.auth.tokens import AccessTokens
from health.db.engine import Database

AppendRows = Any  # tests/audit/conftest.py
BASE = "http://testserver"
FHIR_JSON = {"Accept": "application/fhir+json"}


def _bearer(token: str) -> dict[str, str]:
    return {**FHIR_JSON, "Authorization": f"Bearer {token}"}


@pytest.fixture
def http(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, base_url=BASE, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def anna(issue_token: Callable[..., str]) -> dict[str, str]:
    """Headers of anna's own app (a citizen token confined to Patient/anna)."""
    token = issue_token(
        actor_kind="citizen", scope="patient/*.rs", patient_id="anna", fhir_user="Patient/anna"
    )
    return _bearer(token)


@pytest.fixture
def auditor(database: Database, http: TestClient) -> dict[str, str]:
    """Headers of an auditor's backend client, its token got by SMART Backend Services."""
    key = BackendKey.generate()
    with database.session(write=True) as session:
        registered = ClientStore(session).register_backend(
            name="Data protection officer",
            scope="system/AuditEvent.rs",
            jwks=key.public_jwks(),
            organization_id="dpo",
            organization_identifier="urn:test|dpo",
            auditor=True,
        )
    issued = request_token(
        http, f"{BASE}/auth/token", registered.client_id, key, scope="system/AuditEvent.rs"
    )
    return _bearer(issued.access_token)


def test_an_auditors_token_names_the_auditor(app: FastAPI, auditor: dict[str, str]) -> None:
    tokens: AccessTokens = app.state.access_tokens
    context = tokens.verify(auditor["Authorization"].removeprefix("Bearer "))
    assert context.actor_kind == ActorKind.auditor.value
    assert context.organization_id == "dpo"


def _seqs(bundle: dict[str, Any]) -> list[str]:
    return [entry["resource"]["id"] for entry in bundle.get("entry", [])]


def test_a_citizen_sees_their_own_log_newest_first(
    http: TestClient, anna: dict[str, str], log_rows: None
) -> None:
    answer = http.get("/fhir/AuditEvent", headers=anna)
    assert answer.status_code == 200, answer.text
    bundle = answer.json()
    Bundle.model_validate(bundle)
    assert bundle["type"] == "searchset"
    assert _seqs(bundle) == ["5", "3", "1"]
    assert bundle["total"] == 3
    entity = bundle["entry"][0]["resource"]["entity"][0]
    assert entity["what"]["reference"] == "Patient/anna"
    assert bundle["entry"][0]["fullUrl"] == f"{BASE}/fhir/AuditEvent/5"


def test_a_citizen_pages_through_their_log(
    http: TestClient, anna: dict[str, str], log_rows: None
) -> None:
    first = http.get("/fhir/AuditEvent", params={"_count": "2"}, headers=anna).json()
    assert _seqs(first) == ["5", "3"]
    assert first["total"] == 3
    following = next(link["url"] for link in first["link"] if link["relation"] == "next")
    second = http.get(following, headers=anna).json()
    assert _seqs(second) == ["1"]
    assert not [link for link in second["link"] if link["relation"] == "next"]


def test_a_citizen_finds_nothing_of_anothers_log(
    http: TestClient, anna: dict[str, str], log_rows: None
) -> None:
    for patient in ("bo", "Patient/bo"):
        answer = http.get("/fhir/AuditEvent", params={"patient": patient}, headers=anna)
        assert answer.status_code == 200
        assert answer.json()["total"] == 0 and _seqs(answer.json()) == []
    # Row 2 is about bo: to anna it does not exist; row 3 is hers.
    assert http.get("/fhir/AuditEvent/2", headers=anna).status_code == 404
    assert http.get("/fhir/AuditEvent/999", headers=anna).status_code == 404
    own = http.get("/fhir/AuditEvent/3", headers=anna)
    assert own.status_code == 200
    assert own.json()["id"] == "3"
    asked_for_own = http.get("/fhir/AuditEvent", params={"patient": "anna"}, headers=anna)
    assert _seqs(asked_for_own.json()) == ["5", "3", "1"]


def test_a_date_confines_the_log(
    http: TestClient, anna: dict[str, str], log_rows: None, start: datetime
) -> None:
    after = (start + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    answer = http.get("/fhir/AuditEvent", params={"date": f"gt{after}"}, headers=anna)
    assert _seqs(answer.json()) == ["5", "3"]


def test_an_auditor_sees_every_citizens_log(
    http: TestClient, auditor: dict[str, str], log_rows: None
) -> None:
    everything = http.get("/fhir/AuditEvent", headers=auditor)
    assert everything.status_code == 200, everything.text
    assert _seqs(everything.json()) == ["5", "4", "3", "2", "1"]
    bos = http.get("/fhir/AuditEvent", params={"patient": "bo"}, headers=auditor).json()
    assert _seqs(bos) == ["2"] and bos["total"] == 1
    assert http.get("/fhir/AuditEvent/2", headers=auditor).status_code == 200


def test_an_auditor_cannot_read_the_record_itself(
    http: TestClient, auditor: dict[str, str]
) -> None:
    # Its scope covers AuditEvent only.
    assert http.get("/fhir/Patient", headers=auditor).status_code == 403


def test_a_clinician_and_a_hospital_are_refused(
    client: TestClient, issue_token: Callable[..., str], log_rows: None
) -> None:
    answer = client.get("/fhir/AuditEvent")
    assert answer.status_code == 403
    assert answer.json()["resourceType"] == "OperationOutcome"
    assert client.get("/fhir/AuditEvent/1").status_code == 403
    hospital = _bearer(issue_token(actor_kind="client", scope="system/*.cruds"))
    assert client.get("/fhir/AuditEvent", headers=hospital).status_code == 403


def test_a_citizen_token_without_an_audit_event_scope_is_refused(
    http: TestClient, issue_token: Callable[..., str], log_rows: None
) -> None:
    token = issue_token(
        actor_kind="citizen",
        scope="patient/Observation.rs",
        patient_id="anna",
        fhir_user="Patient/anna",
    )
    assert http.get("/fhir/AuditEvent", headers=_bearer(token)).status_code == 403


def test_without_a_token_the_log_answers_401(http: TestClient) -> None:
    assert http.get("/fhir/AuditEvent", headers=FHIR_JSON).status_code == 401


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/fhir/AuditEvent"),
        ("PUT", "/fhir/AuditEvent/1"),
        ("PATCH", "/fhir/AuditEvent/1"),
        ("DELETE", "/fhir/AuditEvent/1"),
        ("DELETE", "/fhir/AuditEvent?patient=anna"),
    ],
)
def test_nobody_writes_the_log(
    http: TestClient, auditor: dict[str, str], log_rows: None, method: str, path: str
) -> None:
    answer = http.request(
        method,
        path,
        headers={**auditor, "Content-Type": "application/fhir+json"},
        content=b'{"resourceType": "AuditEvent"}',
    )
    assert answer.status_code == 405, answer.text
    assert answer.headers["allow"] == "GET"
    outcome = answer.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "written by the server" in outcome["issue"][0]["diagnostics"]
    assert _seqs(http.get("/fhir/AuditEvent", headers=auditor).json()) == [
        "5",
        "4",
        "3",
        "2",
        "1",
    ]


def test_history_is_not_offered(http: TestClient, auditor: dict[str, str]) -> None:
    assert http.get("/fhir/AuditEvent/_history", headers=auditor).status_code == 400
    assert http.get("/fhir/AuditEvent/1/_history", headers=auditor).status_code == 400


def test_the_capability_statement_says_the_access_log_is_read_only(
    anonymous_client: Any,
) -> None:
    statement = anonymous_client.get("/fhir/metadata").json()
    (entry,) = [r for r in statement["rest"][0]["resource"] if r["type"] == "AuditEvent"]

    assert [i["code"] for i in entry["interaction"]] == ["read", "search-type"]
