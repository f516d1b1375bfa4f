"""Search over a real database with hand-made index rows: the tests' `Store`.

The index rows are written by hand (IndexRows), so the tests of tests/db/test_search_*.py
pin down what the SQL does with the rows it is given, independent of the extractor.
The helpers are imported by name (`from tests.db.conftest import Store, day, name`), as
tests/portal does; the `store` fixture is shared by pytest.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import orjson
import pytest
from sqlalchemy import Engine, event

from health import PROJECT_ROOT
from health.db.engine import Database
from health.db.repository import Repository
from health.db.versions import SearchPage, Write
from health.fhir.search.dates import date_range
from health.fhir.search.definitions import SearchDefinitions
from health.fhir.search.index_rows import IndexRows
from health.fhir.search.normalise import normalise
from health.fhir.search.params import SearchLimits, SearchRequest, parse_search

DEFINITIONS = SearchDefinitions(PROJECT_ROOT / "fhir")
BASE = "http://testserver/fhir"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def day(text: str) -> tuple[datetime, datetime]:
    found = date_range(text)
    assert found is not None
    return found


def _request(resource_type: str, query: str) -> SearchRequest:
    return parse_search(
        resource_type,
        parse_qsl(query, keep_blank_values=True),
        DEFINITIONS,
        base_url=BASE,
        limits=SearchLimits(default_count=50, max_count=1000),
    )


class Store:
    """Writes resources with hand-made index rows and searches them, one transaction each."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._versions: dict[tuple[str, str], int] = {}
        self._clock = T0

    def put(self, key: str, **rows: list[tuple[object, ...]]) -> None:
        resource_type, resource_id = key.split("/")
        version = self._versions.get((resource_type, resource_id), 0) + 1
        self._versions[(resource_type, resource_id)] = version
        self._clock += timedelta(seconds=1)
        write = Write(
            resource_type=resource_type,
            id=resource_id,
            version_id=version,
            last_updated=self._clock,
            method="PUT",
            body=orjson.dumps({"resourceType": resource_type, "id": resource_id}),
            index=IndexRows(**rows),  # type: ignore[arg-type]
        )
        with self.database.session(write=True) as session:
            Repository.system(session).save([write])

    def delete(self, key: str) -> None:
        resource_type, resource_id = key.split("/")
        version = self._versions[(resource_type, resource_id)] + 1
        self._versions[(resource_type, resource_id)] = version
        self._clock += timedelta(seconds=1)
        write = Write(resource_type, resource_id, version, self._clock, "DELETE", None)
        with self.database.session(write=True) as session:
            Repository.system(session).save([write])

    def page(self, resource_type: str, query: str, cursor: str | None = None) -> SearchPage:
        request = _request(resource_type, query)
        with self.database.session(write=False) as session:
            return Repository.system(session).search(request, limit=request.count, cursor=cursor)

    def ids(self, resource_type: str, query: str) -> list[str]:
        return [v.id for v in self.page(resource_type, query).matches]

    def all_pages(self, resource_type: str, query: str) -> list[str]:
        seen: list[str] = []
        cursor = None
        while True:
            page = self.page(resource_type, query, cursor)
            seen.extend(v.id for v in page.matches)
            if page.next_cursor is None:
                return seen
            cursor = page.next_cursor


@pytest.fixture
def store(database: Database) -> Store:
    return Store(database)


def name(value: str) -> tuple[str, str, str]:
    return ("family", normalise(value), value)


@contextmanager
def statements_run(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """The statements, with their parameters, that `engine` executes inside the block."""
    executed: list[tuple[str, Any]] = []

    def note(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        executed.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", note)
    try:
        yield executed
    finally:
        event.remove(engine, "before_cursor_execute", note)


@contextmanager
def statements_compiled(engine: Engine) -> Iterator[list[str]]:
    """How SQLAlchemy came by each statement `engine` compiles and executes inside the
    block, by the name of its CacheStats: CACHE_HIT (from its compiled cache),
    CACHE_MISS (compiled, then cached), NO_CACHE_KEY (compiled every time)."""
    compiled: list[str] = []

    def note(
        _conn: Any, _cursor: Any, _statement: Any, _params: Any, context: Any, *_: Any
    ) -> None:
        if context.compiled is not None:  # not what is sent as it is (BEGIN, SAVEPOINT)
            compiled.append(context.cache_hit.name)

    event.listen(engine, "before_cursor_execute", note)
    try:
        yield compiled
    finally:
        event.remove(engine, "before_cursor_execute", note)


def sqlite_plan(database: Database, statement: str, parameters: Any) -> list[str]:
    """SQLite's plan for `statement`, one line per step (EXPLAIN QUERY PLAN)."""
    with database.read_engine.connect() as connection:
        rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
        return [row[3] for row in rows]
