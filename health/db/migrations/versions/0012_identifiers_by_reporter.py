"""identifiers by reporter: index rows of the citizen's Patient's identifiers per source

A hospital's or GP's client searches the citizen's one Patient by the identifiers it
reported itself (health/access/source_search.py), on rows of the parameter
`identifier:reported-by` with system "Organization/x|system" that the extractor now
writes for each identifier credited to a source (health/fhir/search/extract.py). This
revision writes them for the Patients stored before it, from the reporters their
identifiers carry (the `urn:health:reported-by` extension), in batches. The revision
stands alone: it reads the stored JSON itself rather than the application's code,
which later revisions may change.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29
"""

from __future__ import annotations

from typing import Any

import orjson
import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

PARAM = "identifier:reported-by"
REPORTED_BY = "urn:health:reported-by"
BATCH = 500
SYSTEM_LENGTH = 512

_resource = sa.table(
    "resource",
    sa.column("resource_type", sa.String),
    sa.column("id", sa.String),
    sa.column("deleted", sa.Boolean),
    sa.column("patient_id", sa.String),
    sa.column("recorded_by", sa.String),
    sa.column("body", sa.LargeBinary),
)
_token = sa.table(
    "search_token",
    sa.column("resource_type", sa.String),
    sa.column("resource_id", sa.String),
    sa.column("patient_id", sa.String),
    sa.column("recorded_by", sa.String),
    sa.column("param", sa.String),
    sa.column("system", sa.String),
    sa.column("code", sa.String),
    sa.column("text", sa.String),
)


def upgrade() -> None:
    connection = op.get_bind()
    # Rerun safely: a Patient's rows are written once.
    connection.execute(sa.delete(_token).where(_token.c.param == PARAM))
    after = ""
    while True:
        page = connection.execute(
            sa.select(
                _resource.c.id, _resource.c.patient_id, _resource.c.recorded_by, _resource.c.body
            )
            .where(
                _resource.c.resource_type == "Patient",
                _resource.c.deleted.is_(False),
                _resource.c.id > after,
            )
            .order_by(_resource.c.id)
            .limit(BATCH)
        ).all()
        if not page:
            return
        rows = [row for patient in page for row in _rows(*patient)]
        if rows:
            connection.execute(sa.insert(_token), rows)
        after = page[-1].id


def downgrade() -> None:
    op.get_bind().execute(sa.delete(_token).where(_token.c.param == PARAM))


def _rows(
    patient: str, patient_id: str | None, recorded_by: str | None, body: bytes | None
) -> list[dict[str, Any]]:
    try:
        identifiers = orjson.loads(body or b"{}").get("identifier") or []
    except (orjson.JSONDecodeError, AttributeError):
        return []
    rows = []
    for identifier in identifiers:
        if not isinstance(identifier, dict) or identifier.get("value") is None:
            continue
        for extension in identifier.get("extension") or []:
            if not isinstance(extension, dict) or extension.get("url") != REPORTED_BY:
                continue
            reference = extension.get("valueReference")
            if not isinstance(reference, dict):
                continue
            source = reference.get("reference")
            if not source:
                continue
            rows.append(
                {
                    "resource_type": "Patient",
                    "resource_id": patient,
                    "patient_id": patient_id,
                    "recorded_by": recorded_by,
                    "param": PARAM,
                    "system": f"{source}|{identifier.get('system') or ''}"[:SYSTEM_LENGTH],
                    "code": str(identifier["value"])[:SYSTEM_LENGTH],
                    "text": None,
                }
            )
    return rows
