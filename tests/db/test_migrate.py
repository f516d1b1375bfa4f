"""Alembic migrations bring an empty database to exactly the schema the code defines."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from health.db.engine import Database
from health.db.migrate import current_revision, upgrade_to_head
from health.db.repository import Repository


def test_migrated_schema_matches_the_table_definitions(migrated_database: Database) -> None:
    metadata = Repository.schema()
    with migrated_database.write_engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)
    assert differences == []


def test_upgrade_is_idempotent_and_reports_head(migrated_database: Database) -> None:
    upgrade_to_head(migrated_database.write_engine)
    assert current_revision(migrated_database.write_engine) == "0011"
    tables = set(inspect(migrated_database.write_engine).get_table_names())
    assert {
        "resource",
        "resource_version",
        "search_token",
        "conditional_claim",
        "eid_authorization_code",
    } <= tables


def test_postgresql_knows_a_reference_rows_patient_and_target_go_together(
    migrated_database: Database,
) -> None:
    """Extended statistics, so that a patient-scoped reference search is not planned as
    if `patient_id = x AND target_id = x` matched almost nothing (migration 0010)."""
    if migrated_database.is_sqlite:
        pytest.skip("SQLite has no extended statistics")
    with migrated_database.write_engine.connect() as connection:
        kinds = connection.execute(
            text(
                "SELECT stxkind FROM pg_statistic_ext "
                "WHERE stxname = 'st_search_reference_patient_target'"
            )
        ).scalar_one()
    assert set(kinds) == {"d", "f"}
