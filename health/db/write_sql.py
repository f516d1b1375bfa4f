"""What a save writes, as rows and statements: the repository executes them.

Each new version is a current row, a version row, its search index rows and the access
facts it establishes (care relationships, compiled consent; health/access/). Replacing
a version deletes the old index rows and facts first.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import orjson
from sqlalchemy import Delete, Table, delete

from health.access.consent import compile_consent
from health.access.relationships import relationships_of
from health.db.tables import INDEX_TABLES, care_relationship, consent_rule
from health.db.versions import Write

# Where each kind of extracted value goes: IndexRows field -> (table, value columns,
# their length limits; values longer than a column are cut to fit it).
_INDEX_LAYOUT = {
    field_name: (
        INDEX_TABLES[kind],
        columns,
        tuple(getattr(INDEX_TABLES[kind].c[c].type, "length", None) for c in columns),
    )
    for field_name, kind, columns in (
        ("tokens", "token", ("system", "code", "text")),
        ("strings", "string", ("value", "exact")),
        ("dates", "date", ("low", "high")),
        ("references", "reference", ("target_type", "target_id", "url")),
        ("quantities", "quantity", ("value", "system", "code", "unit")),
        ("numbers", "number", ("value",)),
        ("uris", "uri", ("value",)),
    )
}


def current_row(w: Write) -> dict[str, Any]:
    return {
        "resource_type": w.resource_type,
        "id": w.id,
        "version_id": w.version_id,
        "last_updated": w.last_updated,
        "deleted": w.deleted,
        "patient_id": w.patient_id,
        "recorded_by": w.recorded_by,
        "body": w.body,
    }


def version_row(w: Write) -> dict[str, Any]:
    return {**current_row(w), "method": w.method}


def index_rows(writes: Sequence[Write]) -> Iterator[tuple[Table, list[dict[str, Any]]]]:
    """The index rows of the writes, per index table (none for a deletion)."""
    # A deletion has no index rows, whatever its Write carries: searches rely on every
    # index row being a current match (search_sql: a code's page is read from the
    # index alone).
    writes = [w for w in writes if not w.deleted]
    for field_name, (table, columns, limits) in _INDEX_LAYOUT.items():
        rows = [
            {
                "resource_type": w.resource_type,
                "resource_id": w.id,
                "patient_id": w.patient_id,
                "recorded_by": w.recorded_by,
                "param": row[0],
                **{
                    column: value[:limit] if limit and type(value) is str else value
                    for column, limit, value in zip(columns, limits, row[1:], strict=True)
                },
            }
            for w in writes
            for row in getattr(w.index, field_name)
        ]
        if rows:
            yield table, rows


def access_fact_rows(
    writes: Sequence[Write],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The care relationships and consent rules of the new versions (not deletions)."""
    relationships: list[dict[str, Any]] = []
    rules: list[dict[str, Any]] = []
    for w in writes:
        if w.deleted:
            continue
        relationships += [
            {
                "resource_type": w.resource_type,
                "resource_id": w.id,
                "patient_id": w.patient_id,
                "party": r.party,
                "since": r.since,
                "until": r.until,
            }
            for r in relationships_of(
                w.resource_type, w.index, w.patient_id, w.recorded_by, w.last_updated
            )
        ]
        if w.resource_type == "Consent" and w.patient_id is not None and w.body:
            rules += [
                {"consent_id": w.id, "rule": number, "patient_id": w.patient_id, **rule.__dict__}
                for number, rule in enumerate(compile_consent(orjson.loads(w.body)))
            ]
    return relationships, rules


def replaced(writes: Sequence[Write]) -> Iterator[Delete]:
    """Deletes of what the previous versions of the writes contributed: their index
    rows and access facts."""
    by_type: dict[str, list[str]] = {}
    for w in writes:
        by_type.setdefault(w.resource_type, []).append(w.id)
    for resource_type, ids in by_type.items():
        for table in (*INDEX_TABLES.values(),):
            yield delete(table).where(
                table.c.resource_type == resource_type, table.c.resource_id.in_(ids)
            )
        yield delete(care_relationship).where(
            care_relationship.c.resource_type == resource_type,
            care_relationship.c.resource_id.in_(ids),
        )
    if "Consent" in by_type:
        yield delete(consent_rule).where(consent_rule.c.consent_id.in_(by_type["Consent"]))
