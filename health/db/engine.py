"""Engines and sessions: one database transaction per write request or Bundle, and
read-only sessions for reads."""

from __future__ import annotations

import math
import select
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from health.settings import Settings

SQLITE_BUSY_TIMEOUT_MS = 30_000
# PostgreSQL connections a worker keeps open for writes and for reads, unless the
# settings say otherwise (settings.database_write_pool, database_read_pool).
WRITE_POOL = 10
READ_POOL = 5
SQLITE_MMAP_BYTES = 256 * 1024 * 1024

# Marks a statement PostgreSQL should parse and plan once per connection instead of at
# every execution: `select(...).prefix_with(PREPARED)`. Only for statements of one
# fixed shape whose plan does not depend on the values (a lookup by primary key), run
# in nearly every request. A search is never marked: its plan depends on the patient
# and code it is given. docs/BENCHMARKS.md, "Per-request statements prepared".
PREPARED = "/* prepared */"
# psycopg prepares a statement itself once it has run this many times on a connection:
# never, here. Only marked statements are prepared (`_PreparingCursor`).
_NEVER = 2**62

# A pooled PostgreSQL connection that has been idle for longer than this is pinged (one
# round trip) before it is handed out; one back in the pool for less is checked without
# a round trip (`_usable`).
PING_AFTER_IDLE_S = 1.0


class _PreparingCursor(psycopg.Cursor[Any]):
    """psycopg's cursor, preparing the statements marked `PREPARED` (SQLAlchemy does
    not pass psycopg's `prepare` through)."""

    def execute(  # type: ignore[override]
        self,
        query: Any,
        params: Any = None,
        *,
        prepare: bool | None = None,
        binary: bool | None = None,
    ) -> _PreparingCursor:
        if prepare is None and isinstance(query, str) and query.find(PREPARED, 0, 64) >= 0:
            prepare = True
        return super().execute(query, params, prepare=prepare, binary=binary)


def _sqlite_engine(url: str, *, begin: str, echo: bool, read_only: bool) -> Engine:
    """A SQLite engine whose transactions start with `begin` (BEGIN or BEGIN IMMEDIATE);
    one for reads refuses to write (`query_only`), as PostgreSQL's does.

    pysqlite's own transaction handling defers BEGIN and cannot take the write lock up
    front; a writer that starts deferred and upgrades later can fail with SQLITE_BUSY
    regardless of busy_timeout. Writers therefore begin IMMEDIATE and queue on the lock.
    https://docs.sqlalchemy.org/en/20/dialects/sqlite.html#serializable-isolation-savepoints-transactional-ddl
    """
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        echo=echo,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        # Pages read through the operating system's cache, shared by every connection,
        # instead of copied into each connection's own 2 MB one: a citizen's 4,200
        # results outlined in 15 ms instead of 32 (docs/BENCHMARKS.md, "Portal").
        cursor.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
        if read_only:
            cursor.execute("PRAGMA query_only=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql(begin)

    return engine


def _postgres_engine(url: str, *, echo: bool, read_only: bool, pool_size: int) -> Engine:
    """A PostgreSQL engine for writes, or one for reads that cannot write, keeping
    `pool_size` connections open and opening up to twice as many more under load.

    A read's statements run each on its own, in PostgreSQL's autocommit, in sessions
    where every transaction is read-only (default_transaction_read_only): a read
    request sends no BEGIN and no COMMIT, two round trips of the four or five a search
    cost (docs/BENCHMARKS.md, "Reads without BEGIN and COMMIT on PostgreSQL"), and a
    read that tried to write would fail instead of writing outside any transaction.
    Nothing is lost in isolation: at READ COMMITTED, PostgreSQL's default and ours,
    every statement of a transaction takes a snapshot of its own anyway.
    """
    engine = create_engine(
        url,
        echo=echo,
        pool_size=pool_size,
        max_overflow=2 * pool_size,
        isolation_level="AUTOCOMMIT" if read_only else None,
        connect_args={
            # psycopg prepares a statement on the server after five executions, and
            # PostgreSQL then switches to a generic plan that does not know which
            # patient or code is asked for: 930 ms instead of 4 ms for a code lookup
            # at 1,000 patients (docs/BENCHMARKS.md, "Search"). Plan every time, but
            # for the statements marked PREPARED.
            "prepare_threshold": _NEVER,
            "cursor_factory": _PreparingCursor,
            **({"options": _read_only_options(url)} if read_only else {}),
        },
    )
    _check_connections(engine)
    return engine


def _usable(connection: psycopg.Connection[Any], idle_s: float, engine: Engine) -> bool:
    """Whether a pooled connection, idle for `idle_s`, can be handed out.

    A ping at every checkout (`pool_pre_ping`) cost each request two round trips, one
    for its read and one for the access log (docs/BENCHMARKS.md, "Connections checked
    without a round trip"). A server that ends a connection (a restart, a crash of its
    process, `pg_terminate_backend`, `idle_session_timeout`) sends an error and closes
    it, so an idle connection with anything to read has been ended: we never LISTEN,
    and nothing else arrives unasked. A connection idle for longer than
    PING_AFTER_IDLE_S is pinged all the same: its server may have gone without a word
    (a host that lost power and came back), which only a round trip finds.
    """
    if connection.closed or connection.broken:
        return False
    poller = select.poll()
    poller.register(connection.fileno(), select.POLLIN)
    if poller.poll(0):
        return False
    if idle_s < PING_AFTER_IDLE_S:
        return True
    try:
        return bool(engine.dialect.do_ping(connection))
    except psycopg.Error:
        return False


def _check_connections(engine: Engine) -> None:
    """Hand out only usable connections: the pool replaces one `_usable` refuses."""

    @event.listens_for(engine, "connect")
    @event.listens_for(engine, "checkin")
    def _note_time(dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _check(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_s = time.monotonic() - record.info.get("idle_since", -math.inf)
        if not _usable(dbapi_connection, idle_s, engine):
            raise DisconnectionError("the pooled connection is no longer open")


def _read_only_options(url: str) -> str:
    """libpq's `options` for a read connection: the URL's own, and read-only."""
    own = make_url(url).query.get("options", "")
    own = own[-1] if isinstance(own, tuple) else own
    return f"{own} -c default_transaction_read_only=on".strip()


class Database:
    """The engines of one database: reads and writes, each with its own sessions."""

    def __init__(
        self,
        url: str,
        *,
        echo: bool = False,
        write_pool: int = WRITE_POOL,
        read_pool: int = READ_POOL,
    ) -> None:
        """`write_pool`, `read_pool`: PostgreSQL connections kept open for each."""
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            self.write_engine = _sqlite_engine(
                url, begin="BEGIN IMMEDIATE", echo=echo, read_only=False
            )
            self.read_engine = _sqlite_engine(url, begin="BEGIN", echo=echo, read_only=True)
        else:
            self.write_engine = _postgres_engine(
                url, echo=echo, read_only=False, pool_size=write_pool
            )
            self.read_engine = _postgres_engine(url, echo=echo, read_only=True, pool_size=read_pool)
        self._write_sessions = sessionmaker(self.write_engine, expire_on_commit=False)
        self._read_sessions = sessionmaker(self.read_engine, expire_on_commit=False)

    @classmethod
    def of(cls, settings: Settings) -> Database:
        """The database the settings name, with their pool sizes and SQL echo."""
        return cls(
            settings.database_url,
            echo=settings.sql_echo,
            write_pool=settings.database_write_pool,
            read_pool=settings.database_read_pool,
        )

    @contextmanager
    def session(self, *, write: bool) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on any error.

        On PostgreSQL a read session's statements commit each on its own, read-only
        (`_postgres_engine`)."""
        factory = self._write_sessions if write else self._read_sessions
        with factory() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            self.read_engine.dispose()
