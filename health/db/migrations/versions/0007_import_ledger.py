"""import ledger: files `health import` has loaded, by content hash

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import health.db.types

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "import_file",
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("organization_id", sa.String(length=64), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("rejected_entries", sa.Integer(), nullable=False),
        sa.Column("imported_at", health.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("content_hash", "organization_id", name=op.f("pk_import_file")),
    )


def downgrade() -> None:
    op.drop_table("import_file")
