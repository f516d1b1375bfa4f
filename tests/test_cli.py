"""The `health` command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from joserfc.jwk import ECKey
from sqlalchemy import create_engine, inspect
from typer.testing import CliRunner

from health.auth.backend_client import BackendKey
from health.auth.clients import ClientStore
from health.cli import app, demo_instructions
from health.db.engine import Database
from health.seed import demo_clients
from health.settings import Settings

runner = CliRunner()
SOR = "urn:oid:1.2.208.176.1.1"
CPR = "urn:oid:1.2.208.176.1.2"


def test_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("serve", "demo", "migrate", "reindex", "import", "clients", "apps"):
        assert command in result.output


def test_migrate_brings_an_empty_database_to_the_current_schema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    monkeypatch.setenv("HEALTH_DATABASE_URL", url)

    result = runner.invoke(app, ["migrate"])

    assert result.exit_code == 0, result.output
    assert "revision 0012" in result.output
    tables = set(inspect(create_engine(url)).get_table_names())
    assert {"resource", "resource_version", "alembic_version"} <= tables


def test_reindex_runs_on_a_database_and_reports_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEALTH_DATABASE_URL", f"sqlite:///{tmp_path / 'fresh.db'}")

    result = runner.invoke(app, ["reindex"])

    assert result.exit_code == 0, result.output
    assert "Reindexed 0 resources" in result.output


# Clients and apps: registered on the test database, as an operator would


@pytest.fixture
def operator_database(database: Database, monkeypatch: pytest.MonkeyPatch) -> Database:
    """The test database, as the one the `health` command is pointed at."""
    monkeypatch.setenv("HEALTH_DATABASE_URL", database.url)
    return database


def _jwks_file(folder: Path, jwks: dict[str, Any] | None = None) -> Path:
    path = folder / "jwks.json"
    path.write_text(json.dumps(jwks or BackendKey.generate().public_jwks()))
    return path


def _add_client(jwks_file: Path, identifier: str = f"{SOR}|555000111", *extra: str) -> Any:
    return runner.invoke(
        app,
        [
            "clients",
            "add",
            "--name",
            "Nordhavn EPJ",
            "--organization-identifier",
            identifier,
            "--jwks-file",
            str(jwks_file),
            "--scope",
            "system/*.cruds",
            *extra,
        ],
    )


def _listed() -> list[dict[str, Any]]:
    result = runner.invoke(app, ["clients", "list"])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_help_lists_the_client_and_app_commands() -> None:
    clients = runner.invoke(app, ["clients", "--help"])
    apps = runner.invoke(app, ["apps", "--help"])

    assert clients.exit_code == apps.exit_code == 0
    for command in ("add", "list", "remove", "token"):
        assert command in clients.output
    assert "add" in apps.output


def test_clients_add_registers_a_backend_client_for_a_new_organization(
    operator_database: Database, tmp_path: Path, client: TestClient
) -> None:
    jwks = BackendKey.generate().public_jwks()

    result = _add_client(_jwks_file(tmp_path, jwks), f"{SOR}|555000111")

    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["scope"] == "system/*.cruds"
    assert shown["organization_created"] is True
    assert shown["token_endpoint"] == "http://localhost:8000/auth/token"
    organization = client.get(f"/fhir/Organization/{shown['organization_id']}")
    assert organization.status_code == 200, organization.text
    assert organization.json()["identifier"] == [{"system": SOR, "value": "555000111"}]
    assert organization.json()["name"] == "Nordhavn EPJ"
    # Stored in the database: another process (here, a new session) finds it.
    with operator_database.session(write=False) as session:
        stored = ClientStore(session).get(shown["client_id"])
    assert stored is not None
    assert stored.jwks == jwks and stored.organization_id == shown["organization_id"]


def test_clients_add_binds_to_the_organization_that_has_the_identifier(
    operator_database: Database, tmp_path: Path, client: TestClient
) -> None:
    first = _add_client(_jwks_file(tmp_path), f"{SOR}|555000222")
    second = _add_client(_jwks_file(tmp_path), f"{SOR}|555000222")

    assert first.exit_code == second.exit_code == 0, first.output + second.output
    first_shown, second_shown = json.loads(first.stdout), json.loads(second.stdout)
    assert first_shown["client_id"] != second_shown["client_id"]
    assert first_shown["organization_id"] == second_shown["organization_id"]
    assert second_shown["organization_created"] is False
    found = client.get("/fhir/Organization", params={"identifier": f"{SOR}|555000222"})
    assert found.json()["total"] == 1


@pytest.mark.parametrize(
    ("jwks", "message"),
    [
        (
            {"keys": [{**ECKey.generate_key("P-384").as_dict(private=True), "kid": "k"}]},
            "private key material",
        ),
        ({"keys": [{**ECKey.generate_key("P-256").as_dict(private=False), "kid": "k"}]}, "P-384"),
    ],
)
def test_clients_add_refuses_unfit_keys_and_registers_nothing(
    operator_database: Database,
    tmp_path: Path,
    client: TestClient,
    jwks: dict[str, Any],
    message: str,
) -> None:
    result = _add_client(_jwks_file(tmp_path, jwks), f"{SOR}|555000333")

    assert result.exit_code == 1
    assert message in result.stderr
    assert result.stdout == ""
    assert not [c for c in _listed() if c["kind"] == "backend"]
    found = client.get("/fhir/Organization", params={"identifier": f"{SOR}|555000333"})
    assert found.json()["total"] == 0


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--scope", "patient/*.read"], "not a system/ scope"),
        (["--scope", "system/Patient.sr"], "not a SMART scope"),
        (["--organization-identifier", "555000444"], "SYSTEM|VALUE"),
    ],
)
def test_clients_add_refuses_bad_scopes_and_identifiers(
    operator_database: Database, tmp_path: Path, arguments: list[str], message: str
) -> None:
    given = {
        "--name": "Nordhavn EPJ",
        "--organization-identifier": f"{SOR}|555000444",
        "--jwks-file": str(_jwks_file(tmp_path)),
        "--scope": "system/*.cruds",
    }
    given[arguments[0]] = arguments[1]

    result = runner.invoke(app, ["clients", "add", *[v for pair in given.items() for v in pair]])

    assert result.exit_code == 1
    assert message in result.stderr


def test_clients_add_refuses_a_jwks_file_that_is_not_json(
    operator_database: Database, tmp_path: Path
) -> None:
    path = tmp_path / "jwks.json"
    path.write_text("-----BEGIN PUBLIC KEY-----")

    result = _add_client(path)

    assert result.exit_code == 1
    assert "not a readable JSON file" in result.stderr


def test_clients_list_shows_every_client_but_never_keys_or_secrets(
    operator_database: Database, tmp_path: Path
) -> None:
    backend = json.loads(_add_client(_jwks_file(tmp_path)).stdout)
    added_app = json.loads(
        runner.invoke(
            app, ["apps", "add", "--name", "Chart", "--redirect-uri", "https://chart.example/cb"]
        ).stdout
    )

    result = runner.invoke(app, ["clients", "list"])

    assert result.exit_code == 0, result.output
    listed = {c["client_id"]: c for c in map(json.loads, result.stdout.splitlines())}
    assert listed[backend["client_id"]]["kind"] == "backend"
    assert listed[backend["client_id"]]["organization_identifier"] == f"{SOR}|555000111"
    assert listed[added_app["client_id"]]["kind"] == "app"
    assert listed[added_app["client_id"]]["confidential"] is True
    assert added_app["client_secret"] not in result.stdout
    for hidden in ('"keys"', '"jwks"', '"x"', "secret"):
        assert hidden not in result.stdout


def test_clients_remove_unregisters_and_fails_for_an_unknown_client(
    operator_database: Database, tmp_path: Path
) -> None:
    client_id = json.loads(_add_client(_jwks_file(tmp_path)).stdout)["client_id"]

    removed = runner.invoke(app, ["clients", "remove", client_id])
    again = runner.invoke(app, ["clients", "remove", client_id])

    assert removed.exit_code == 0, removed.output
    assert client_id not in [c["client_id"] for c in _listed()]
    assert again.exit_code == 1
    assert "No client" in again.stderr


def test_apps_add_prints_a_confidential_apps_secret_once(operator_database: Database) -> None:
    result = runner.invoke(
        app,
        [
            "apps",
            "add",
            "--name",
            "Chart Viewer",
            "--redirect-uri",
            "https://chart.example/callback",
            "--redirect-uri",
            "http://localhost:3000/callback",
            "--scope",
            "openid fhirUser user/*.rs",
        ],
    )

    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["public"] is False
    assert shown["scope"] == "openid fhirUser user/*.rs"
    assert shown["redirect_uris"] == [
        "https://chart.example/callback",
        "http://localhost:3000/callback",
    ]
    with operator_database.session(write=False) as session:
        assert ClientStore(session).secret_matches(shown["client_id"], shown["client_secret"])


def test_apps_add_public_has_no_secret(operator_database: Database) -> None:
    result = runner.invoke(
        app,
        ["apps", "add", "--name", "Pocket", "--redirect-uri", "https://a.example/cb", "--public"],
    )

    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert "client_secret" not in shown and shown["public"] is True
    with operator_database.session(write=False) as session:
        stored = ClientStore(session).get(shown["client_id"])
    assert stored is not None and not stored.confidential


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--redirect-uri", "http://chart.example/cb"], "plain http"),
        (["--redirect-uri", "https://chart.example/cb#top"], "fragment"),
        (["--redirect-uri", "https://chart.example/cb", "--scope", "system/*.rs"], "system/"),
    ],
)
def test_apps_add_refuses_unsafe_redirect_uris_and_system_scopes(
    operator_database: Database, arguments: list[str], message: str
) -> None:
    result = runner.invoke(app, ["apps", "add", "--name", "Chart", *arguments])

    assert result.exit_code == 1
    assert message in result.stderr
    assert _listed() == []


def test_demo_instructions_say_where_to_log_in_and_how_to_push_as_a_demo_hospital() -> None:
    settings = Settings(base_url="http://localhost:8123")

    text = "\n".join(demo_instructions(settings))

    assert "http://localhost:8123/portal/" in text
    assert "http://localhost:8123/auth/token" in text
    assert "1406580991" in text  # a test citizen's CPR number
    for demo_client in demo_clients():
        assert demo_client.client_id in text
        assert demo_client.key_path.name in text
    assert "clients token demo-nordhavn --key" in text
    assert "--fhir-base-url http://localhost:8123/fhir" in text


# health import


def _import(*args: str) -> Any:
    return runner.invoke(app, ["import", *args])


def test_import_loads_a_folder_as_a_source_and_summarises(
    operator_database: Database, tmp_path: Path
) -> None:
    assert _add_client(_jwks_file(tmp_path)).exit_code == 0
    folder = tmp_path / "export"
    folder.mkdir()
    patients = [
        {
            "resourceType": "Patient",
            "id": "a",
            "identifier": [{"system": CPR, "value": "0303031234"}],
        },
        {"resourceType": "Patient", "id": "b"},
    ]
    (folder / "Patient.ndjson").write_text("\n".join(json.dumps(p) for p in patients))

    result = _import(str(folder), "--source", f"{SOR}|555000111")

    assert result.exit_code == 0, result.output
    assert "Imported 1 files" in result.output
    assert "Patient: 1" in result.output
    assert "Patient.ndjson line 2: " in result.output
    again = _import(str(folder), "--source", f"{SOR}|555000111")
    assert "Imported 0 files" in again.output
    assert "1 already imported" in again.output


def test_import_refuses_an_unknown_source(operator_database: Database, tmp_path: Path) -> None:
    result = _import(str(tmp_path), "--source", f"{SOR}|404")
    assert result.exit_code == 1
    assert "no Organization with identifier" in result.output
