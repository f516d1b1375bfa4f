"""The database engines: how statements are prepared and planned."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from health.db.engine import Database

_BY_PATIENT = "SELECT count(*) FROM resource WHERE patient_id = :patient"


def test_postgresql_plans_prepared_statements_with_their_values(database: Database) -> None:
    """A statement run often on a connection is prepared, and PostgreSQL still plans
    each execution for the patient asked about: a generic plan, made once for any
    patient or code, took 930 ms instead of 4 for a code lookup (docs/BENCHMARKS.md)."""
    if database.is_sqlite:
        pytest.skip("SQLite has no server-side plans")
    with database.session(write=False) as session:
        for number in range(12):
            session.execute(text(_BY_PATIENT), {"patient": f"p{number}"}).scalar_one()
        generic, custom = session.execute(
            text(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
                "WHERE statement LIKE '%FROM resource WHERE patient_id = $1%'"
            )
        ).one()
    assert custom > 0
    assert generic == 0
