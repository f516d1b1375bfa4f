"""development eID state: logins in progress, authorization codes, access tokens

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import health.db.types

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "eid_access_token",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=128), nullable=False),
        sa.Column("scope", sa.String(length=512), nullable=False),
        sa.Column("national_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("birth_date", sa.String(length=10), nullable=True),
        sa.Column("acr", sa.String(length=128), nullable=False),
        sa.Column("auth_time", health.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", health.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_eid_access_token")),
    )
    with op.batch_alter_table("eid_access_token", schema=None) as batch_op:
        batch_op.create_index(
            "ix_eid_access_token_client", ["client_id", "national_id"], unique=False
        )
        batch_op.create_index("ix_eid_access_token_expires_at", ["expires_at"], unique=False)

    op.create_table(
        "eid_authorization_code",
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("redirect_uri", sa.String(length=1024), nullable=False),
        sa.Column("nonce", sa.String(length=512), nullable=True),
        sa.Column("code_challenge", sa.String(length=128), nullable=False),
        sa.Column("code_challenge_method", sa.String(length=8), nullable=False),
        sa.Column("client_id", sa.String(length=128), nullable=False),
        sa.Column("scope", sa.String(length=512), nullable=False),
        sa.Column("national_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("birth_date", sa.String(length=10), nullable=True),
        sa.Column("acr", sa.String(length=128), nullable=False),
        sa.Column("auth_time", health.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", health.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code_hash", name=op.f("pk_eid_authorization_code")),
    )
    with op.batch_alter_table("eid_authorization_code", schema=None) as batch_op:
        batch_op.create_index("ix_eid_authorization_code_expires_at", ["expires_at"], unique=False)

    op.create_table(
        "eid_login_request",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("browser_id", sa.String(length=64), nullable=False),
        sa.Column("parameters", sa.Text(), nullable=False),
        sa.Column("expires_at", health.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eid_login_request")),
    )
    with op.batch_alter_table("eid_login_request", schema=None) as batch_op:
        batch_op.create_index("ix_eid_login_request_expires_at", ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("eid_login_request", schema=None) as batch_op:
        batch_op.drop_index("ix_eid_login_request_expires_at")

    op.drop_table("eid_login_request")
    with op.batch_alter_table("eid_authorization_code", schema=None) as batch_op:
        batch_op.drop_index("ix_eid_authorization_code_expires_at")

    op.drop_table("eid_authorization_code")
    with op.batch_alter_table("eid_access_token", schema=None) as batch_op:
        batch_op.drop_index("ix_eid_access_token_expires_at")
        batch_op.drop_index("ix_eid_access_token_client")

    op.drop_table("eid_access_token")
