"""What a save writes, as rows and statements: the repository executes them.

Each new version is a current row, a version row, its search index rows and the access
facts it establishes (care relationships, compiled consent; health/access/). Replacing
a version deletes the old index rows and facts first.

The current, version and index rows are plain tuples for one DBAPI executemany per
table (`Insert`), or one COPY on PostgreSQL: SQLAlchemy's own executemany builds a
parameter dict per row and passes every value through its compiled statement, which
cost as much as SQLite's own work for the ~11 index rows of a Synthea resource, and on
PostgreSQL each row was an INSERT parsed and planned on its own (docs/BENCHMARKS.md,
"Ingest").
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Delete, Table, TextClause, delete, text
from sqlalchemy.engine import Dialect

from health.access.consent import compile_consent
from health.access.relationships import relationships_of
from health.db.tables import (
    INDEX_TABLES,
    care_relationship,
    consent_rule,
    resource,
    resource_version,
)
from health.db.versions import Write


def insert_unless_taken(table: Table, row: dict[str, Any]) -> TextClause:
    """INSERT of one row that inserts nothing when its key is taken (ON CONFLICT DO
    NOTHING, on PostgreSQL and SQLite alike): a conflict is an answer, not an error that
    would need a savepoint to keep the transaction going. It returns the primary key of
    the row it inserted, and no row when the key was taken (the result's rowcount is
    not reliable for this statement on psycopg: it answered -1 either way)."""
    return _unless_taken(table, tuple(row)).bindparams(**row)


@functools.cache
def _unless_taken(table: Table, columns: tuple[str, ...]) -> TextClause:
    # As text, which SQLAlchemy compiles once: its PostgreSQL and SQLite `insert`
    # constructs have no cache key (2.0), so every conditional create compiled its
    # claim afresh, 6% of a provider directory's batch on PostgreSQL.
    key = ", ".join(column.name for column in table.primary_key)
    return text(
        f"INSERT INTO {table.name} ({', '.join(columns)}) "
        f"VALUES ({', '.join(f':{column}' for column in columns)}) "
        f"ON CONFLICT DO NOTHING RETURNING {key}"
    )


# The columns every index row starts with, before its parameter's values.
_INDEX_KEY_COLUMNS = ("resource_type", "resource_id", "patient_id", "recorded_by", "param")
_CURRENT_COLUMNS = (
    "resource_type",
    "id",
    "version_id",
    "last_updated",
    "deleted",
    "patient_id",
    "recorded_by",
    "body",
)

# Where each kind of extracted value goes: IndexRows field -> (table, value columns).
_INDEX_LAYOUT = {
    "tokens": (INDEX_TABLES["token"], ("system", "code", "text")),
    "strings": (INDEX_TABLES["string"], ("value", "exact")),
    "dates": (INDEX_TABLES["date"], ("low", "high")),
    "references": (INDEX_TABLES["reference"], ("target_type", "target_id", "url")),
    "quantities": (INDEX_TABLES["quantity"], ("value", "system", "code", "unit")),
    "numbers": (INDEX_TABLES["number"], ("value",)),
    "uris": (INDEX_TABLES["uri"], ("value",)),
}


@dataclass(frozen=True)
class Insert:
    """An INSERT of rows given as tuples in `columns` order, for one executemany on
    the DBAPI cursor (`Connection.exec_driver_sql`).

    The column types' bind processors still apply (UTC dates as SQLite stores them,
    booleans, bytes), but only to the columns that have one; string values longer than
    their column are cut to fit it, as the index has always done.
    """

    sql: str
    # The same as a COPY FROM STDIN on PostgreSQL, where one COPY costs the server a
    # fraction of the same rows' INSERTs (each is parsed and planned on its own).
    copy: str | None
    # (position, processor) of the columns whose type converts values on the way in.
    processors: tuple[tuple[int, Callable[[Any], Any]], ...]
    # (position, length) of the string columns with a length limit.
    limits: tuple[tuple[int, int], ...]

    @classmethod
    def of(
        cls, table: Table, columns: Sequence[str], dialect: Dialect, *, cut: Sequence[str] = ()
    ) -> Insert:
        """The INSERT of `columns` into `table` for `dialect`; values of the `cut`
        columns longer than the column are cut to fit it."""
        preparer = dialect.identifier_preparer
        placeholder = "?" if dialect.paramstyle == "qmark" else "%s"
        target = (
            f"{preparer.format_table(table)} "
            f"({', '.join(preparer.format_column(table.c[c]) for c in columns)})"
        )
        sql = f"INSERT INTO {target} VALUES ({', '.join([placeholder] * len(columns))})"
        # psycopg 3's `Cursor.copy`: https://www.psycopg.org/psycopg3/docs/basic/copy.html
        copy = f"COPY {target} FROM STDIN" if dialect.driver == "psycopg" else None
        processors = []
        limits = []
        for position, name in enumerate(columns):
            column_type = table.c[name].type
            # The dialect's own type: SQLite's DATETIME writes the text form that its
            # comparisons rely on (the generic type leaves that to sqlite3's adapter).
            processor = column_type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                processors.append((position, processor))
            length = getattr(column_type, "length", None)
            if name in cut and length:
                limits.append((position, length))
        return cls(sql, copy, tuple(processors), tuple(limits))

    def parameters(self, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """The rows as the DBAPI takes them: converted and cut to fit, in place."""
        for position, length in self.limits:
            for number, row in enumerate(rows):
                value = row[position]
                if type(value) is str and len(value) > length:
                    rows[number] = (*row[:position], value[:length], *row[position + 1 :])
        if self.processors:
            for number, row in enumerate(rows):
                values = list(row)
                for position, process in self.processors:
                    values[position] = process(values[position])
                rows[number] = tuple(values)
        return rows


@dataclass(frozen=True)
class Inserts:
    """The INSERTs of a save for one dialect, built once per dialect."""

    current: Insert
    version: Insert
    # IndexRows field -> its table's INSERT
    index: dict[str, Insert]


_INSERTS: dict[tuple[str, str], Inserts] = {}


def inserts_for(dialect: Dialect) -> Inserts:
    """The INSERTs of a save on a database of `dialect`."""
    key = (dialect.name, dialect.paramstyle)
    found = _INSERTS.get(key)
    if found is None:
        found = Inserts(
            current=Insert.of(resource, _CURRENT_COLUMNS, dialect),
            version=Insert.of(resource_version, (*_CURRENT_COLUMNS, "method"), dialect),
            index={
                field_name: Insert.of(table, (*_INDEX_KEY_COLUMNS, *columns), dialect, cut=columns)
                for field_name, (table, columns) in _INDEX_LAYOUT.items()
            },
        )
        _INSERTS[key] = found
    return found


def current_row(w: Write) -> dict[str, Any]:
    """The current row of a write, by column: the UPDATE of a later version."""
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


def current_tuple(w: Write) -> tuple[Any, ...]:
    """The current row of a write, in the order of `Inserts.current`."""
    return (
        w.resource_type,
        w.id,
        w.version_id,
        w.last_updated,
        w.deleted,
        w.patient_id,
        w.recorded_by,
        w.body,
    )


def version_tuple(w: Write) -> tuple[Any, ...]:
    """The version row of a write (its current row and method), for `Inserts.version`."""
    return (*current_tuple(w), w.method)


def index_rows(writes: Sequence[Write]) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
    """The index rows of the writes, per IndexRows field (none for a deletion), as
    tuples in the order of `Inserts.index[field]` (values not yet cut to fit)."""
    # A deletion has no index rows, whatever its Write carries: searches rely on every
    # index row being a current match (search_sql: a code's page is read from the
    # index alone).
    keyed = [
        ((w.resource_type, w.id, w.patient_id, w.recorded_by), w.index)
        for w in writes
        if not w.deleted
    ]
    for field_name in _INDEX_LAYOUT:
        rows = [key + row for key, index in keyed for row in getattr(index, field_name)]
        if rows:
            yield field_name, rows


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
