"""The rows a save writes, as the DBAPI takes them (health/db/write_sql.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import psycopg
from sqlalchemy.engine import Dialect

from health.db.engine import Database
from health.db.repository import Repository
from health.db.write_sql import inserts_for
from tests.db.conftest import statements_compiled

DIALECTS = [sqlite.dialect(), psycopg.dialect()]
KEY = ("Observation", "o1", "p1", "org1")


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
def test_index_values_longer_than_their_column_are_cut_and_others_kept(dialect: Dialect) -> None:
    tokens = inserts_for(dialect).index["tokens"]
    rows = [
        (*KEY, "code", "http://loinc.org", "1234-5", None),
        (*KEY, "code", None, "x" * 600, "y" * 513),
        (*KEY, "code", "s" * 512, None, "short"),
    ]
    assert tokens.parameters(list(rows)) == [
        rows[0],
        (*KEY, "code", None, "x" * 512, "y" * 512),
        rows[2],
    ]


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
def test_a_non_text_value_in_a_text_column_is_left_as_it_is(dialect: Dialect) -> None:
    uris = inserts_for(dialect).index["uris"]
    rows = [(*KEY, "url", 7), (*KEY, "url", "u" * 1100)]
    assert uris.parameters(list(rows)) == [(*KEY, "url", 7), (*KEY, "url", "u" * 1024)]


def test_dates_are_converted_in_every_row_and_column() -> None:
    # On SQLite, instants are stored as naive UTC (health/db/types.py): every row's low
    # and high must go through the column's conversion, whatever the row count.
    dates = inserts_for(sqlite.dialect()).index["dates"]
    plus_two = timezone(timedelta(hours=2))
    rows = [
        (*KEY, "date", datetime(2026, 1, 1, n, tzinfo=plus_two), datetime(2026, 1, 2, tzinfo=UTC))
        for n in range(3)
    ]
    converted = dates.parameters(list(rows))
    assert [row[:5] for row in converted] == [(*KEY, "date")] * 3
    assert [row[5:] for row in converted] == [
        ("2025-12-31 22:00:00.000000", "2026-01-02 00:00:00.000000"),
        ("2025-12-31 23:00:00.000000", "2026-01-02 00:00:00.000000"),
        ("2026-01-01 00:00:00.000000", "2026-01-02 00:00:00.000000"),
    ]


def test_no_rows_are_no_rows() -> None:
    assert inserts_for(sqlite.dialect()).index["dates"].parameters([]) == []


def test_a_taken_claim_is_an_answer_and_the_transaction_goes_on(database: Database) -> None:
    """`insert_unless_taken`, as conditional creates use it: the second claim of the same
    criteria inserts nothing and raises nothing, and the transaction still commits."""
    with database.session(write=True) as session:
        repository = Repository.system(session)
        assert repository.claim("Patient", "criteria", "p1")
        assert not repository.claim("Patient", "criteria", "p2")
        assert repository.claim("Patient", "other criteria", "p3")
    with database.session(write=True) as session:
        assert not Repository.system(session).claim("Patient", "criteria", "p4")


def test_a_claim_is_compiled_once_and_then_taken_from_the_cache(database: Database) -> None:
    """Each conditional create that creates makes a claim: SQLAlchemy's PostgreSQL and
    SQLite `insert` constructs have no cache key, and compiling one each time cost 6% of
    a provider directory's batch (docs/BENCHMARKS.md)."""
    with database.session(write=True) as session:
        repository = Repository.system(session)
        repository.claim("Patient", "first criteria", "p1")
        with statements_compiled(database.write_engine) as compiled:
            repository.claim("Patient", "second criteria", "p2")
            repository.claim("Patient", "second criteria", "p3")
    assert compiled == ["CACHE_HIT", "CACHE_HIT"]
