"""search index tables

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import health.db.types

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "search_date",
        sa.Column("resource_type", sa.String(length=64), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=True),
        sa.Column("param", sa.String(length=64), nullable=False),
        sa.Column("low", health.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("high", health.db.types.UTCDateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table("search_date", schema=None) as batch_op:
        batch_op.create_index(
            "ix_search_date_lookup", ["resource_type", "param", "low", "high"], unique=False
        )
        batch_op.create_index(
            "ix_search_date_owner", ["resource_type", "resource_id"], unique=False
        )

    op.create_table(
        "search_number",
        sa.Column("resource_type", sa.String(length=64), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=True),
        sa.Column("param", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
    )
    with op.batch_alter_table("search_number", schema=None) as batch_op:
        batch_op.create_index(
            "ix_search_number_lookup", ["resource_type", "param", "value"], unique=False
        )
        batch_op.create_index(
            "ix_search_number_owner", ["resource_type", "resource_id"], unique=False
        )

    op.create_table(
        "search_quantity",
        sa.Column("resource_type", sa.String(length=64), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=True),
        sa.Column("param", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("system", sa.String(length=512), nullable=True),
        sa.Column("code", sa.String(length=512), nullable=True),
        sa.Column("unit", sa.String(length=512), nullable=True),
    )
    with op.batch_alter_table("search_quantity", schema=None) as batch_op:
        batch_op.create_index(
            "ix_search_quantity_lookup", ["resource_type", "param", "code", "value"], unique=False
        )
        batch_op.create_index(
            "ix_search_quantity_owner", ["resource_type", "resource_id"], unique=False
        )

    op.create_table(
        "search_reference",
        sa.Column("resource_type", sa.String(length=64), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=True),
        sa.Column("param", sa.String(length=64), nullable=False),
        sa.Column("target_type", sa.String(length=64), nullable=True),
        sa.Column("target_id", sa.String(length=64), nullable=True),
        sa.Column("url", sa.String(length=1024), nullable=True),
    )
    with op.batch_alter_table("search_reference", schema=None) as batch_op:
        batch_op.create_index(
            "ix_search_reference_lookup", ["resource_type", "param", "target_id"], unique=False
        )
        batch_op.create_index(
            "ix_search_reference_owner", ["resource_type", "resource_id"], unique=False
        )
        batch_op.create_index(
            "ix_search_reference_target", ["target_type", "target_id"], unique=False
        )

    op.create_table(
        "search_string",
        sa.Column("resource_type", sa.String(length=64), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=True),
        sa.Column("param", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=512), nullable=False),
        sa.Column("exact", sa.String(length=512), nullable=False),
    )
    with op.batch_alter_table("search_string", schema=None) as batch_op:
        batch_op.create_index(
            "ix_search_string_lookup", ["resource_type", "param", "value"], unique=False
        )
        batch_op.create_index(
            "ix_search_string_owner", ["resource_type", "resource_id"], unique=False
        )

    op.create_table(
        "search_uri",
        sa.Column("resource_type", sa.String(length=64), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=True),
        sa.Column("param", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=1024), nullable=False),
    )
    with op.batch_alter_table("search_uri", schema=None) as batch_op:
        batch_op.create_index(
            "ix_search_uri_lookup", ["resource_type", "param", "value"], unique=False
        )
        batch_op.create_index("ix_search_uri_owner", ["resource_type", "resource_id"], unique=False)

    with op.batch_alter_table("search_token", schema=None) as batch_op:
        batch_op.add_column(sa.Column("text", sa.String(length=512), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("search_token", schema=None) as batch_op:
        batch_op.drop_column("text")

    with op.batch_alter_table("search_uri", schema=None) as batch_op:
        batch_op.drop_index("ix_search_uri_owner")
        batch_op.drop_index("ix_search_uri_lookup")

    op.drop_table("search_uri")
    with op.batch_alter_table("search_string", schema=None) as batch_op:
        batch_op.drop_index("ix_search_string_owner")
        batch_op.drop_index("ix_search_string_lookup")

    op.drop_table("search_string")
    with op.batch_alter_table("search_reference", schema=None) as batch_op:
        batch_op.drop_index("ix_search_reference_target")
        batch_op.drop_index("ix_search_reference_owner")
        batch_op.drop_index("ix_search_reference_lookup")

    op.drop_table("search_reference")
    with op.batch_alter_table("search_quantity", schema=None) as batch_op:
        batch_op.drop_index("ix_search_quantity_owner")
        batch_op.drop_index("ix_search_quantity_lookup")

    op.drop_table("search_quantity")
    with op.batch_alter_table("search_number", schema=None) as batch_op:
        batch_op.drop_index("ix_search_number_owner")
        batch_op.drop_index("ix_search_number_lookup")

    op.drop_table("search_number")
    with op.batch_alter_table("search_date", schema=None) as batch_op:
        batch_op.drop_index("ix_search_date_owner")
        batch_op.drop_index("ix_search_date_lookup")

    op.drop_table("search_date")
