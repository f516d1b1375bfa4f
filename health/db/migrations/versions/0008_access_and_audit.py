"""access and audit: who recorded each row, treatment relationships, compiled
consent, emergency access, and the hash-chained access log

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29

Rows written before this revision keep `recorded_by` null: they count as written by
the system (health/access/), as the seed and imports of that time were.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import health.db.types

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

PARTY = sa.String(length=129)
INDEX_TABLES = (
    "search_token",
    "search_string",
    "search_date",
    "search_reference",
    "search_quantity",
    "search_number",
    "search_uri",
)


def _when(name: str, nullable: bool = True) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, health.db.types.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    for table in ("resource", "resource_version", *INDEX_TABLES):
        op.add_column(table, sa.Column("recorded_by", PARTY, nullable=True))
    op.create_index("ix_resource_recorded_by", "resource", ["recorded_by", "patient_id"])
    op.add_column(
        "auth_client",
        sa.Column("auditor", sa.Boolean(), nullable=False, server_default=sa.false()),
    )

    op.create_table(
        "care_relationship",
        sa.Column("resource_type", sa.String(length=64), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("party", PARTY, nullable=False),
        _when("since"),
        _when("until"),
        sa.PrimaryKeyConstraint(
            "resource_type", "resource_id", "party", name=op.f("pk_care_relationship")
        ),
    )
    op.create_index(
        "ix_care_relationship_party", "care_relationship", ["party", "patient_id", "until"]
    )

    op.create_table(
        "consent_rule",
        sa.Column("consent_id", sa.String(length=64), nullable=False),
        sa.Column("rule", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("effect", sa.String(length=8), nullable=False),
        sa.Column("party", PARTY, nullable=True),
        sa.Column("resource_class", sa.String(length=64), nullable=True),
        sa.Column("label_system", sa.String(length=512), nullable=True),
        sa.Column("label_code", sa.String(length=128), nullable=True),
        sa.Column("target_type", sa.String(length=64), nullable=True),
        sa.Column("target_id", sa.String(length=64), nullable=True),
        _when("since"),
        _when("until"),
        sa.PrimaryKeyConstraint("consent_id", "rule", name=op.f("pk_consent_rule")),
    )
    op.create_index("ix_consent_rule_patient", "consent_rule", ["patient_id", "effect"])
    op.create_index("ix_consent_rule_party", "consent_rule", ["party", "effect"])

    op.create_table(
        "break_glass",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("practitioner", PARTY, nullable=False),
        sa.Column("organization", PARTY, nullable=True),
        sa.Column("client_id", sa.String(length=128), nullable=True),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        _when("started", nullable=False),
        _when("expires", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_break_glass")),
    )
    op.create_index(
        "ix_break_glass_practitioner", "break_glass", ["practitioner", "patient_id", "expires"]
    )
    op.create_index("ix_break_glass_patient", "break_glass", ["patient_id", "started"])
    op.create_index("ix_break_glass_started", "break_glass", ["started"])

    op.create_table(
        "audit_log",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        _when("recorded", nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("agent_kind", sa.String(length=16), nullable=False),
        sa.Column("agent", PARTY, nullable=True),
        sa.Column("agent_name", sa.String(length=256), nullable=True),
        sa.Column("organization", PARTY, nullable=True),
        sa.Column("client_id", sa.String(length=128), nullable=True),
        sa.Column("on_behalf_of", PARTY, nullable=True),
        sa.Column("patient_id", sa.String(length=64), nullable=True),
        sa.Column("entities", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_log")),
    )
    op.create_index("ix_audit_log_patient", "audit_log", ["patient_id", "seq"])
    op.create_index("ix_audit_log_recorded", "audit_log", ["recorded"])

    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )


def downgrade() -> None:
    for name in ("audit_head", "audit_log", "break_glass", "consent_rule", "care_relationship"):
        op.drop_table(name)
    op.drop_index("ix_resource_recorded_by", table_name="resource")
    with op.batch_alter_table("auth_client") as batch:
        batch.drop_column("auditor")
    for table in ("resource", "resource_version", *INDEX_TABLES):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("recorded_by")
