"""search index: token pages in id order, string prefixes as "C" ranges

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29

- ix_search_token_lookup ends in resource_id, so the matches of one `system|code` come
  in id order and a page of them is read from the index alone; ix_search_token_patient
  gains code and system, so that SQLite keeps choosing it for a patient's codes.
- search_string.value compares in the "C" collation on PostgreSQL (code point order,
  as SQLite's BINARY), so that a prefix search is a range of ix_search_string_lookup.
  Changing the collation rebuilds that index.

docs/BENCHMARKS.md, "Search", findings 4 and 5.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_TOKEN_LOOKUP = ["resource_type", "param", "code", "system"]
_TOKEN_PATIENT = ["patient_id", "resource_type", "param"]


def _token_indexes(lookup: list[str], patient: list[str]) -> None:
    op.drop_index("ix_search_token_lookup", table_name="search_token")
    op.create_index("ix_search_token_lookup", "search_token", lookup, unique=False)
    op.drop_index("ix_search_token_patient", table_name="search_token")
    op.create_index("ix_search_token_patient", "search_token", patient, unique=False)


def _string_value_collation(collation: str | None) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.alter_column(
        "search_string",
        "value",
        type_=sa.String(length=512, collation=collation),
        existing_type=sa.String(length=512),
        existing_nullable=False,
    )


def upgrade() -> None:
    _token_indexes([*_TOKEN_LOOKUP, "resource_id"], [*_TOKEN_PATIENT, "code", "system"])
    _string_value_collation("C")


def downgrade() -> None:
    _string_value_collation(None)
    _token_indexes(_TOKEN_LOOKUP, _TOKEN_PATIENT)
