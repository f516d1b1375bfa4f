"""The demo organisations' backend clients: registered with the demo world, once, as demo
clients; anyone holding a key from seed_data/keys/ gets tokens over HTTP like any SMART
backend client, and production refuses to start while they are registered."""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from typer.testing import CliRunner

from health import PROJECT_ROOT
from health.app import NotReadyForProduction, check_production_readiness
from health.auth.backend_client import request_token, token_endpoint
from health.auth.clients import ClientKind, ClientStore
from health.auth.registration import backend_jwks
from health.cli import app as cli
from health.db.engine import Database
from health.fhir.config import FhirConfig
from health.seed import SeedSummary, demo_clients, seed_demo_world
from health.seed.world import SOR_SYSTEM
from health.settings import Settings

TODAY = date(2026, 11, 28)
FHIR_JSON = {"Accept": "application/fhir+json", "Content-Type": "application/fhir+json"}
runner = CliRunner()


def _seed(database: Database, config: FhirConfig) -> SeedSummary:
    return seed_demo_world(database, config, today=TODAY)


def _bearer(token: str) -> dict[str, str]:
    return {**FHIR_JSON, "Authorization": f"Bearer {token}"}


def test_seeding_registers_a_demo_client_for_every_organisation(
    database: Database, app: FastAPI
) -> None:
    summary = _seed(database, app.state.fhir_config)

    assert summary.clients_registered == 4
    with database.session(write=False) as session:
        registered = {client.client_id: client for client in ClientStore(session).list()}
    for demo in demo_clients():
        client = registered[demo.client_id]
        assert client.kind is ClientKind.backend and client.demo
        # Bound to the Organization the directory loaded, found by its SOR code.
        assert client.organization_id == demo.organisation.key
        assert client.organization_identifier == f"{SOR_SYSTEM}|{demo.organisation.sor}"
        assert client.scope == "system/*.cruds"
        assert client.jwks == demo.key().public_jwks()
        assert all("d" not in key for key in client.jwks["keys"])


def test_seeding_again_registers_nothing_new(database: Database, app: FastAPI) -> None:
    _seed(database, app.state.fhir_config)
    again = _seed(database, app.state.fhir_config)

    assert again.clients_registered == 0
    with database.session(write=False) as session:
        demo = [client.client_id for client in ClientStore(session).list() if client.demo]
    assert sorted(demo) == sorted(client.client_id for client in demo_clients())


def test_the_demo_keys_ship_in_the_repository_as_es384_keys() -> None:
    clients = demo_clients()

    assert [c.organisation.kind for c in clients] == ["hospital", "hospital", "gp", "gp"]
    for client in clients:
        assert client.key_path.parent == PROJECT_ROOT / "seed_data" / "keys"
        key = client.key()
        assert key.algorithm == "ES384"
        assert backend_jwks(key.public_jwks())["keys"][0]["kid"] == key.kid


def test_production_refuses_to_start_while_demo_clients_are_registered(
    database: Database, app: FastAPI
) -> None:
    _seed(database, app.state.fhir_config)
    production = Settings(database_url=database.url, env="production")  # type: ignore[arg-type]

    with pytest.raises(NotReadyForProduction, match="demo clients"):
        check_production_readiness(production, database)


def test_a_demo_hospital_gets_a_token_over_http_and_creates_and_reads(
    live_server: Any, database: Database
) -> None:
    _seed(database, live_server.app.state.fhir_config)
    nordhavn = demo_clients()[0]

    with httpx.Client(timeout=30.0) as http:
        endpoint = token_endpoint(http, live_server.fhir_url)
        issued = request_token(http, endpoint, nordhavn.client_id, nordhavn.key())
        # A Patient the demo world does not have (a pushed Patient needs a national ID).
        cpr = {"system": "urn:oid:1.2.208.176.1.2", "value": "0101904991"}
        created = http.post(
            f"{live_server.fhir_url}/Patient",
            json={
                "resourceType": "Patient",
                "identifier": [cpr],
                "name": [{"family": "Demo-push"}],
            },
            headers=_bearer(issued.access_token),
        )
        assert created.status_code == 201, created.text
        patient_id = created.json()["id"]
        read = http.get(
            f"{live_server.fhir_url}/Patient/{patient_id}", headers=_bearer(issued.access_token)
        )
        anonymous = http.get(f"{live_server.fhir_url}/Patient/{patient_id}", headers=FHIR_JSON)

    assert endpoint == f"{live_server.base_url}/auth/token"
    assert issued.scope == "system/*.cruds" and issued.expires_in > 0
    assert read.status_code == 200, read.text
    assert read.json()["name"] == [{"family": "Demo-push"}]
    assert anonymous.status_code == 401


def test_health_clients_token_works_until_the_client_is_removed(
    live_server: Any, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    _seed(database, live_server.app.state.fhir_config)
    monkeypatch.setenv("HEALTH_DATABASE_URL", database.url)
    practice = next(c for c in demo_clients() if c.organisation.kind == "gp")
    arguments = ["--key", str(practice.key_path), "--fhir-base-url", live_server.fhir_url]

    result = runner.invoke(cli, ["clients", "token", practice.client_id, *arguments])
    assert result.exit_code == 0, result.output
    headers = _bearer(result.stdout.strip())
    url = f"{live_server.fhir_url}/Organization/{practice.organisation.key}"
    with httpx.Client(timeout=30.0) as http:
        before = http.get(url, headers=headers)
        removed = runner.invoke(cli, ["clients", "remove", practice.client_id])
        after = http.get(url, headers=headers)
    refused = runner.invoke(cli, ["clients", "token", practice.client_id, *arguments])

    assert before.status_code == 200, before.text
    assert before.json()["name"] == practice.organisation.name
    assert removed.exit_code == 0, removed.output
    assert after.status_code == 401
    assert refused.exit_code == 1
    assert "refused the token request" in refused.stderr
