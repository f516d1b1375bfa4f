"""The grants behind tokens: the lookup every /fhir request makes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text

from health.auth.clients import ClientStore
from health.auth.grants import GrantStore
from health.db.engine import Database

_APP = "grants-test-app"


def test_a_grant_is_in_force_for_its_client_until_revoked(database: Database) -> None:
    with database.session(write=True) as session:
        ClientStore(session).register_app(
            client_id=_APP,
            name="Grants test app",
            scope="patient/*.rs",
            redirect_uris=["http://127.0.0.1/callback"],
            confidential=False,
        )
        grant = GrantStore(session).create(
            client_id=_APP,
            scope="patient/*.rs",
            actor_kind="citizen",
            patient_id="anna",
            lifetime=timedelta(minutes=5),
        )
    with database.session(write=False) as session:
        assert GrantStore(session).active(grant.id, _APP) == grant
        assert GrantStore(session).active(grant.id, "another-client") is None
    with database.session(write=True) as session:
        GrantStore(session).revoke(grant.id)
    with database.session(write=False) as session:
        assert GrantStore(session).active(grant.id, _APP) is None


# How often this connection ran the prepared grant lookup (None: never prepared).
_LOOKUP_RUNS = text(
    "SELECT generic_plans + custom_plans FROM pg_prepared_statements "
    "WHERE statement LIKE '%FROM auth_grant%'"
)


def test_the_lookup_is_planned_once_per_connection_on_postgresql(database: Database) -> None:
    if database.is_sqlite:
        pytest.skip("PostgreSQL's prepared statements")
    with database.session(write=False) as session:
        before = session.execute(_LOOKUP_RUNS).scalar_one_or_none() or 0
        for _ in range(3):
            assert GrantStore(session).active("no-such-grant", "no-such-client") is None
        assert session.execute(_LOOKUP_RUNS).scalar_one() == before + 3
