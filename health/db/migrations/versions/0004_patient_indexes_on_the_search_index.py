"""patient indexes on the search index

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("search_date", schema=None) as batch_op:
        batch_op.create_index(
            "ix_search_date_patient", ["patient_id", "resource_type", "param"], unique=False
        )

    with op.batch_alter_table("search_number", schema=None) as batch_op:
        batch_op.create_index(
            "ix_search_number_patient", ["patient_id", "resource_type", "param"], unique=False
        )

    with op.batch_alter_table("search_quantity", schema=None) as batch_op:
        batch_op.create_index(
            "ix_search_quantity_patient", ["patient_id", "resource_type", "param"], unique=False
        )

    with op.batch_alter_table("search_reference", schema=None) as batch_op:
        batch_op.create_index(
            "ix_search_reference_patient", ["patient_id", "resource_type", "param"], unique=False
        )

    with op.batch_alter_table("search_string", schema=None) as batch_op:
        batch_op.create_index(
            "ix_search_string_patient", ["patient_id", "resource_type", "param"], unique=False
        )

    with op.batch_alter_table("search_token", schema=None) as batch_op:
        batch_op.create_index(
            "ix_search_token_patient", ["patient_id", "resource_type", "param"], unique=False
        )

    with op.batch_alter_table("search_uri", schema=None) as batch_op:
        batch_op.create_index(
            "ix_search_uri_patient", ["patient_id", "resource_type", "param"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("search_uri", schema=None) as batch_op:
        batch_op.drop_index("ix_search_uri_patient")

    with op.batch_alter_table("search_token", schema=None) as batch_op:
        batch_op.drop_index("ix_search_token_patient")

    with op.batch_alter_table("search_string", schema=None) as batch_op:
        batch_op.drop_index("ix_search_string_patient")

    with op.batch_alter_table("search_reference", schema=None) as batch_op:
        batch_op.drop_index("ix_search_reference_patient")

    with op.batch_alter_table("search_quantity", schema=None) as batch_op:
        batch_op.drop_index("ix_search_quantity_patient")

    with op.batch_alter_table("search_number", schema=None) as batch_op:
        batch_op.drop_index("ix_search_number_patient")

    with op.batch_alter_table("search_date", schema=None) as batch_op:
        batch_op.drop_index("ix_search_date_patient")
