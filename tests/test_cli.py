"""The `health` command line."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect
from typer.testing import CliRunner

from health.cli import app

runner = CliRunner()


def test_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("serve", "demo", "migrate", "reindex"):
        assert command in result.output


def test_migrate_brings_an_empty_database_to_the_current_schema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    monkeypatch.setenv("HEALTH_DATABASE_URL", url)

    result = runner.invoke(app, ["migrate"])

    assert result.exit_code == 0, result.output
    assert "revision 0005" in result.output
    tables = set(inspect(create_engine(url)).get_table_names())
    assert {"resource", "resource_version", "alembic_version"} <= tables


def test_reindex_runs_on_a_database_and_reports_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEALTH_DATABASE_URL", f"sqlite:///{tmp_path / 'fresh.db'}")

    result = runner.invoke(app, ["reindex"])

    assert result.exit_code == 0, result.output
    assert "Reindexed 0 resources" in result.output
