"""`health audit verify`, `health audit break-glass` and `health clients add --auditor`."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from health.auth.backend_client import BackendKey
from health.auth.clients import ClientStore
from health.cli import app
from health.db.engine import Database

AppendRows = Any  # tests/audit/conftest.py
MakeEntry = Any
runner = CliRunner()


@pytest.fixture
def operator_database(
    database: Database, audit_key: bytes, monkeypatch: pytest.MonkeyPatch
) -> Database:
    """The test database and audit key, as the `health` command is configured with them."""
    monkeypatch.setenv("HEALTH_DATABASE_URL", database.url)
    monkeypatch.setenv("HEALTH_AUDIT_KEY", audit_key.decode())
    return database


def test_verify_says_an_intact_chain_is_intact(operator_database: Database, log_rows: None) -> None:
    result = runner.invoke(app, ["audit", "verify"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "5 entries, chain intact"


def test_verify_lists_each_problem_with_its_seq(
    operator_database: Database, log_rows: None
) -> None:
    with operator_database.write_engine.begin() as connection:
        connection.execute(text("UPDATE audit_log SET agent = 'Practitioner/x' WHERE seq = 2"))
        connection.execute(text("DELETE FROM audit_log WHERE seq = 5"))
    result = runner.invoke(app, ["audit", "verify"])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == "4 entries, 2 problems:"
    assert lines[1].startswith("  seq 2: its hash does not match")
    assert lines[2].startswith("  seq 5: seq 5 missing at the end")


def test_verify_with_another_key_finds_every_row_altered(
    operator_database: Database, log_rows: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEALTH_AUDIT_KEY", "another-key-of-at-least-32-characters!")
    result = runner.invoke(app, ["audit", "verify"])
    assert result.exit_code == 1
    assert result.output.count("its hash does not match") == 5


@pytest.fixture
def emergencies(append: AppendRows, make_entry: MakeEntry, start: datetime) -> None:
    """Bo broke the glass for anna and looked twice; later for carl, without looking."""

    def grant(patient: str) -> Any:
        return make_entry(
            patient,
            action="break-glass",
            purpose="emergency",
            entities=(f"Patient/{patient}",),
            detail=f"{patient} unconscious in the ER",
        )

    append(grant("anna"), at=start)
    append(make_entry("anna", purpose="emergency"), at=start + timedelta(minutes=5))
    append(make_entry("anna", purpose="emergency"), at=start + timedelta(minutes=9))
    append(grant("carl"), at=start + timedelta(days=2))


def test_break_glass_lists_grants_with_their_disclosures(
    operator_database: Database, emergencies: None
) -> None:
    result = runner.invoke(
        app, ["audit", "break-glass", "--since", "2026-03-01"], env={"COLUMNS": "250"}
    )
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if "unconscious" in line]
    assert len(rows) == 2
    cells = [cell.strip() for cell in rows[0].strip("│ ").split("│")]
    assert cells == [
        "2026-03-01 12:00:00",
        "Bo Jensen (Practitioner/bo)",
        "Organization/nordhavn",
        "anna",
        "anna unconscious in the ER",
        "2",
    ]
    assert rows[1].rstrip(" │").endswith("0")


def test_break_glass_until_a_day_and_as_json(
    operator_database: Database, emergencies: None
) -> None:
    result = runner.invoke(
        app, ["audit", "break-glass", "--since", "2026-03-01", "--until", "2026-03-02", "--json"]
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [(line["patient_id"], line["disclosures"]) for line in lines] == [("anna", 2)]
    assert lines[0]["reason"] == "anna unconscious in the ER"


def test_break_glass_outside_any_grant_says_so(operator_database: Database) -> None:
    result = runner.invoke(app, ["audit", "break-glass", "--since", "2026-03-01"])
    assert result.exit_code == 0, result.output
    assert "No emergency access in this period" in result.output


def _add_auditor(folder: Path, scope: str) -> Any:
    jwks = folder / "jwks.json"
    jwks.write_text(json.dumps(BackendKey.generate().public_jwks()))
    return runner.invoke(
        app,
        [
            "clients",
            "add",
            "--name",
            "Data protection officer",
            "--organization-identifier",
            "urn:oid:1.2.208.176.1.1|999000111",
            "--jwks-file",
            str(jwks),
            "--scope",
            scope,
            "--auditor",
        ],
    )


def test_clients_add_auditor_registers_an_auditor(
    operator_database: Database, tmp_path: Path
) -> None:
    result = _add_auditor(tmp_path, "system/AuditEvent.rs")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["auditor"] is True
    with operator_database.session(write=False) as session:
        registered = ClientStore(session).get(shown["client_id"])
    assert registered is not None and registered.auditor


@pytest.mark.parametrize("scope", ["system/*.rs", "system/AuditEvent.cruds system/Patient.rs"])
def test_an_auditor_is_given_the_log_only(
    operator_database: Database, tmp_path: Path, scope: str
) -> None:
    result = _add_auditor(tmp_path, scope)
    assert result.exit_code == 1
    assert "system/AuditEvent.rs" in result.output
