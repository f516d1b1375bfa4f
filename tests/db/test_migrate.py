"""Alembic migrations bring an empty database to exactly the schema the code defines."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from health import PROJECT_ROOT
from health.access.attribution import attributed
from health.db.engine import Database
from health.db.migrate import alembic_config, current_revision, upgrade_to_head
from health.db.repository import Repository
from health.db.versions import Write
from health.fhir.search.definitions import SearchDefinitions
from health.fhir.search.extract import Extractor


def test_migrated_schema_matches_the_table_definitions(migrated_database: Database) -> None:
    metadata = Repository.schema()
    with migrated_database.write_engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)
    assert differences == []


def test_upgrade_is_idempotent_and_reports_head(migrated_database: Database) -> None:
    upgrade_to_head(migrated_database.write_engine)
    assert current_revision(migrated_database.write_engine) == "0012"
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


def test_identifiers_by_reporter_are_written_for_patients_stored_before(
    database: Database,
) -> None:
    """Migration 0012 writes, for the Patients stored before it, the rows by reporter
    that the extractor writes now: after a downgrade and upgrade the same rows."""
    extractor = Extractor(SearchDefinitions(PROJECT_ROOT / "fhir"), "http://testserver/fhir")
    north, south = "Organization/north", "Organization/south"
    identifiers = {
        "karen": [
            attributed(
                {"system": "urn:oid:1.2.208.176.1.2", "value": "0101801234"}, [north, south]
            ),
            attributed({"system": "urn:rh:mrn", "value": "RH-1"}, [north]),
        ],
        "ole": [{"system": "urn:oid:1.2.208.176.1.2", "value": "0202802345"}],
    }
    bodies = {
        p: {"resourceType": "Patient", "id": p, "identifier": i} for p, i in identifiers.items()
    }
    with database.session(write=True) as session:
        Repository.system(session).save(
            [
                Write(
                    resource_type="Patient",
                    id=patient,
                    version_id=1,
                    last_updated=datetime.now(UTC),
                    method="POST",
                    body=orjson.dumps(body),
                    patient_id=patient,
                    index=extractor.extract(body),
                )
                for patient, body in bodies.items()
            ]
        )

    def by_reporter() -> list[tuple[object, ...]]:
        with database.write_engine.connect() as connection:
            return sorted(
                tuple(row)
                for row in connection.execute(
                    text(
                        "SELECT resource_id, patient_id, system, code FROM search_token "
                        "WHERE param = 'identifier:reported-by'"
                    )
                )
            )

    written = by_reporter()
    config = alembic_config(database.write_engine)
    try:
        command.downgrade(config, "0011")
        assert by_reporter() == []
    finally:
        upgrade_to_head(database.write_engine)

    assert by_reporter() == written
    assert written == [
        ("karen", "karen", "Organization/north|urn:oid:1.2.208.176.1.2", "0101801234"),
        ("karen", "karen", "Organization/north|urn:rh:mrn", "RH-1"),
        ("karen", "karen", "Organization/south|urn:oid:1.2.208.176.1.2", "0101801234"),
    ]
