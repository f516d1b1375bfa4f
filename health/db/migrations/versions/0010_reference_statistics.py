"""PostgreSQL statistics on how a reference index row's patient and target go together

A patient-scoped reference search (`Observation?subject=Patient/x&...`) asks for the
rows of patient x whose target is x. Counting the two columns as independent,
PostgreSQL expected one such row and started the plan from there, reading every one of
the patient's Observations even when no laboratory result matched (3,750 buffers and
4 ms instead of 3 buffers and 0.04 ms: docs/BENCHMARKS.md, "Where PostgreSQL's time
goes in the mix"). Extended statistics tell it the columns depend on each other. They
take effect at the table's next ANALYZE, which autovacuum runs after a bulk load.
SQLite has no such statistics; its plans are checked in tests/db.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "CREATE STATISTICS IF NOT EXISTS st_search_reference_patient_target "
        "(dependencies, ndistinct) ON patient_id, target_id FROM search_reference"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP STATISTICS IF EXISTS st_search_reference_patient_target")
