"""a patient's resources of a type in id order: the resource table's patient index
gains the id, so that the next page of a patient-scoped search continues in the index

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_resource_patient", table_name="resource")
    op.create_index("ix_resource_patient", "resource", ["patient_id", "resource_type", "id"])


def downgrade() -> None:
    op.drop_index("ix_resource_patient", table_name="resource")
    op.create_index("ix_resource_patient", "resource", ["patient_id", "resource_type"])
