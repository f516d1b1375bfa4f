"""Sessions: a write's one transaction, and reads that cannot write."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.pq import TransactionStatus
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.pool import QueuePool

from health.db import engine
from health.db.engine import PREPARED, Database
from health.settings import Settings

# A write that changes nothing: refused all the same where writing is refused.
_TOUCH = text("UPDATE alembic_version SET version_num = version_num")
_VERSION = text("SELECT version_num FROM alembic_version")


def _transaction_status(session: Session) -> TransactionStatus:
    """Whether psycopg holds a transaction open on the session's connection."""
    dbapi = session.connection().connection.dbapi_connection
    return dbapi.info.transaction_status  # type: ignore[union-attr]


def test_a_read_session_refuses_to_write(database: Database) -> None:
    with (
        pytest.raises(DBAPIError, match=r"(?i)read-?only"),
        database.session(write=False) as session,
    ):
        session.execute(_TOUCH)

    with database.session(write=False) as session:
        assert session.execute(_VERSION).scalar_one()


def test_a_write_session_writes_in_one_transaction(database: Database) -> None:
    with database.session(write=True) as session:
        session.execute(_TOUCH)
        if not database.is_sqlite:
            assert _transaction_status(session) == TransactionStatus.INTRANS


def test_a_read_on_postgresql_opens_no_transaction(database: Database) -> None:
    """No BEGIN, so no COMMIT: each statement of a read commits on its own."""
    if database.is_sqlite:
        pytest.skip("SQLite's reads keep one snapshot in a deferred transaction")
    with database.session(write=False) as session:
        assert session.execute(_VERSION).scalar_one()
        assert _transaction_status(session) == TransactionStatus.IDLE


def test_a_read_connection_keeps_the_urls_own_options(database: Database) -> None:
    if database.is_sqlite:
        pytest.skip("libpq's options are PostgreSQL's")
    url = make_url(database.url).update_query_dict({"options": "-c application_name=ours"})
    other = Database(url.render_as_string(hide_password=False))
    try:
        with other.session(write=False) as session:
            assert session.execute(text("SHOW application_name")).scalar_one() == "ours"
            assert session.execute(text("SHOW transaction_read_only")).scalar_one() == "on"
        with other.session(write=True) as session:
            assert session.execute(text("SHOW transaction_read_only")).scalar_one() == "off"
    finally:
        other.dispose()


def test_the_pool_sizes_are_the_settings(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An operator sizes the pools to PostgreSQL's max_connections (README)."""
    if database.is_sqlite:
        pytest.skip("SQLite's connections are files, not pooled server sessions")
    monkeypatch.setenv("HEALTH_DATABASE_URL", database.url)
    monkeypatch.setenv("HEALTH_DATABASE_WRITE_POOL", "3")
    monkeypatch.setenv("HEALTH_DATABASE_READ_POOL", "2")
    sized = Database.of(Settings())
    try:
        assert isinstance(sized.write_engine.pool, QueuePool)
        assert isinstance(sized.read_engine.pool, QueuePool)
        assert (sized.write_engine.pool.size(), sized.read_engine.pool.size()) == (3, 2)
        # Under load each opens up to twice as many more.
        overflow = (sized.write_engine.pool._max_overflow, sized.read_engine.pool._max_overflow)
        assert overflow == (6, 4)
    finally:
        sized.dispose()


@pytest.mark.parametrize("setting", ["database_write_pool", "database_read_pool"])
def test_a_pool_of_no_connections_is_refused(setting: str) -> None:
    with pytest.raises(ValidationError, match=setting):
        Settings(**{setting: 0})


# What PostgreSQL has prepared on a session's connection, and how often each ran.
_PREPARED = text(
    "SELECT statement, generic_plans + custom_plans AS runs FROM pg_prepared_statements"
)


def test_only_statements_marked_prepared_are_prepared_on_postgresql(database: Database) -> None:
    """A marked statement is parsed and planned once per connection; any other is
    planned at each execution, however often it runs (a search's plan depends on its
    values)."""
    if database.is_sqlite:
        pytest.skip("SQLite prepares every statement itself")
    marked = f"SELECT {PREPARED} version_num FROM alembic_version"
    for write in (False, True):
        with database.session(write=write) as session:

            def prepared() -> dict[str, int]:
                return {row.statement: row.runs for row in session.execute(_PREPARED)}

            before = prepared().get(marked, 0)
            for _ in range(3):
                assert session.execute(text(marked)).scalar_one()
            for _ in range(10):  # twice psycopg's own threshold
                assert session.execute(_VERSION).scalar_one()
            after = prepared()
        assert after[marked] == before + 3, write
        # Besides the marked ones, only the access log's, which ask psycopg themselves.
        assert all(PREPARED in statement or "audit_" in statement for statement in after), (
            write,
            after,
        )


# How long a test waits for PostgreSQL to end a backend it was told to end.
_END_WAIT_MS = 5000
_PID = text("SELECT pg_backend_pid()")


@pytest.fixture
def one_connection(database: Database) -> Iterator[Database]:
    """The test database with pools of one connection each, so that the next session
    gets the connection the last one had."""
    if database.is_sqlite:
        pytest.skip("SQLite's connections are files, not pooled server sessions")
    small = Database(database.url, write_pool=1, read_pool=1)
    try:
        yield small
    finally:
        small.dispose()


def _pid(database: Database, *, write: bool) -> int:
    with database.session(write=write) as session:
        return int(session.execute(_PID).scalar_one())


def _end_backend(database: Database, pid: int) -> None:
    """End a backend as a restart of PostgreSQL would, and wait until it has gone."""
    with database.write_engine.connect() as connection:
        ended = connection.execute(
            text("SELECT pg_terminate_backend(:pid, :wait)"), {"pid": pid, "wait": _END_WAIT_MS}
        ).scalar_one()
    assert ended


@pytest.mark.parametrize("write", [False, True])
def test_a_connection_the_server_ended_is_replaced_before_a_request_uses_it(
    database: Database, one_connection: Database, monkeypatch: pytest.MonkeyPatch, write: bool
) -> None:
    """Found without a round trip: no connection is old enough here to be pinged."""
    monkeypatch.setattr(engine, "PING_AFTER_IDLE_S", math.inf)
    ended = _pid(one_connection, write=write)
    _end_backend(database, ended)

    assert _pid(one_connection, write=write) != ended


def test_a_connection_in_use_is_handed_out_again_without_a_round_trip(
    one_connection: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    pings = _count_pings(one_connection, monkeypatch)
    first = _pid(one_connection, write=False)
    assert _pid(one_connection, write=False) == first
    assert pings == []


def test_a_connection_idle_for_long_is_pinged_and_replaced_if_the_ping_fails(
    one_connection: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "PING_AFTER_IDLE_S", 0.0)
    pings = _count_pings(one_connection, monkeypatch)
    first = _pid(one_connection, write=False)
    assert _pid(one_connection, write=False) == first
    assert pings == ["ping", "ping"]  # at each checkout: each was past the limit

    # A server gone without a word: the ping fails, and the pool connects anew.
    pings.append("fail")
    assert _pid(one_connection, write=False) != first


def _count_pings(database: Database, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The read engine's pings, as they happen; a ping fails once "fail" is the last."""
    dialect = database.read_engine.dialect
    ping = dialect.do_ping
    pings: list[str] = []

    def counted(dbapi_connection: Any) -> bool:
        if pings and pings[-1] == "fail":
            pings.append("failed")
            raise psycopg.OperationalError("the server went away")
        pings.append("ping")
        return bool(ping(dbapi_connection))

    monkeypatch.setattr(dialect, "do_ping", counted)
    return pings
