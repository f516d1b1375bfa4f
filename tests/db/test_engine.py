"""Sessions: a write's one transaction, and reads that cannot write."""

from __future__ import annotations

import pytest
from psycopg.pq import TransactionStatus
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from health.db.engine import Database

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
