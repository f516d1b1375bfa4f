"""Shared fixtures: a real database (SQLite, or PostgreSQL when
HEALTH_TEST_DATABASE_URL is set), the app over HTTP, and a live server.

Each test session creates a database of its own (a temporary SQLite file, or a new
PostgreSQL database that is dropped at the end) and migrates it with Alembic; every
test starts from empty tables.
"""

from __future__ import annotations

import functools
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import MetaData, create_engine, text
from sqlalchemy.engine import make_url

from health import PROJECT_ROOT
from health.app import create_app
from health.auth.clients import ClientStore
from health.auth.grants import GrantStore
from health.auth.tokens import AccessTokens, TokenContext
from health.db.engine import Database
from health.db.migrate import upgrade_to_head
from health.settings import Settings

TEST_BASE_URL = "http://testserver"
SHARED_DATA = Path(os.environ.get("HEALTH_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data"))


def _postgres_url() -> str | None:
    return os.environ.get("HEALTH_TEST_DATABASE_URL") or None


def _create_postgres_database(admin_url: str) -> str:
    """A new, empty database on the server of `admin_url`; returns its URL."""
    url = make_url(admin_url)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    name = f"health_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:
        if os.environ.get("CI"):
            raise RuntimeError(
                f"HEALTH_TEST_DATABASE_URL is set but PostgreSQL is not reachable: {error}"
            ) from error
        pytest.skip(f"PostgreSQL at {url.render_as_string()} is not reachable: {error}")
    finally:
        admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def _drop_postgres_database(admin_url: str, database_url: str) -> None:
    url = make_url(admin_url)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    name = make_url(database_url).database
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    admin_url = _postgres_url()
    if admin_url is None:
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'health.db'}"
        return
    url = _create_postgres_database(admin_url)
    try:
        yield url
    finally:
        _drop_postgres_database(admin_url, url)


@pytest.fixture(scope="session")
def migrated_database(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    upgrade_to_head(database.write_engine)
    yield database
    database.dispose()


def _empty_tables(database: Database) -> None:
    # The schema is reflected from the database rather than imported from
    # health.db.tables: only the repository may import the table definitions.
    schema = MetaData()
    schema.reflect(database.write_engine)
    with database.write_engine.begin() as connection:
        for table in reversed(schema.sorted_tables):
            if table.name != "alembic_version":
                connection.execute(table.delete())


@pytest.fixture
def database(migrated_database: Database) -> Database:
    """The session's database, emptied for this test."""
    _empty_tables(migrated_database)
    return migrated_database


def make_settings(
    database_url: str, base_url: str = TEST_BASE_URL, **overrides: object
) -> Settings:
    return Settings(database_url=database_url, base_url=base_url, **overrides)  # type: ignore[arg-type]


@pytest.fixture
def settings(database: Database) -> Settings:
    return make_settings(database.url)


@pytest.fixture
def app(settings: Settings, database: Database) -> FastAPI:
    return create_app(settings, database=database, migrate=False)


# The FHIR protocol tests act as a clinician's app holding user/*.cruds: plain FHIR
# semantics. A hospital's pushes (person matching, provenance) are tested as the
# backend client test-hospital, in tests/ingest/.
TEST_APP_ID = "test-app"
TEST_PRACTITIONER = "Practitioner/test-clinician"
TEST_CLIENT_ID = "test-hospital"
TEST_ORGANIZATION_ID = "test-hospital-organization"


def issue_access_token(
    app: FastAPI,
    database: Database,
    *,
    scope: str = "user/*.cruds",
    actor_kind: str = "clinician",
    patient_id: str | None = None,
    fhir_user: str | None = TEST_PRACTITIONER,
    national_id: str | None = None,
    client_id: str | None = None,
    organization_id: str = TEST_ORGANIZATION_ID,
) -> str:
    """A real access token, signed by the app's key, under a grant stored in `database`.

    The flows that lead to tokens (SMART launch, backend services) have tests of their
    own; the rest of the suite starts from a token as a client would hold one. Citizen
    and clinician tokens are issued to the app test-app; client tokens to the backend
    client test-hospital, which acts for the Organization test-hospital-organization.
    """
    backend = actor_kind == "client"
    client_id = client_id or (TEST_CLIENT_ID if backend else TEST_APP_ID)
    with database.session(write=True) as session:
        clients = ClientStore(session)
        if clients.get(client_id) is None and backend:
            clients.register_backend(
                client_id=client_id,
                name="Test hospital",
                scope="system/*.cruds",
                jwks={"keys": []},
                organization_id=organization_id,
                organization_identifier=f"urn:test|{organization_id}",
            )
        elif clients.get(client_id) is None:
            clients.register_app(
                client_id=client_id,
                name="Test app",
                scope="user/*.cruds patient/*.cruds openid fhirUser launch/patient",
                redirect_uris=["http://127.0.0.1/callback"],
                confidential=False,
            )
        grant = GrantStore(session).create(
            client_id=client_id,
            scope=scope,
            actor_kind=actor_kind,
            lifetime=timedelta(hours=1),
            national_id=national_id,
            fhir_user=None if backend else fhir_user,
            patient_id=patient_id,
        )
    tokens: AccessTokens = app.state.access_tokens
    context = TokenContext(
        client_id=client_id,
        actor_kind=actor_kind,
        scope=scope,
        grant_id=grant.id,
        patient_id=patient_id,
        fhir_user=None if backend else fhir_user,
        organization_id=organization_id if backend else None,
    )
    return tokens.issue(context).token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def anonymous_client(app: FastAPI) -> Iterator[TestClient]:
    """The app over HTTP without credentials."""
    with TestClient(app, base_url=TEST_BASE_URL, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def issue_token(app: FastAPI, database: Database) -> Callable[..., str]:
    """issue_access_token for this test's app and database (keyword arguments as there)."""
    return functools.partial(issue_access_token, app, database)


@pytest.fixture
def auth_headers(app: FastAPI, database: Database) -> dict[str, str]:
    """The Authorization header of a clinician's app holding user/*.cruds.

    Any app made from these settings accepts it: they share the signing key file.
    """
    return bearer(issue_access_token(app, database))


@pytest.fixture
def client(app: FastAPI, auth_headers: dict[str, str]) -> Iterator[TestClient]:
    """The app over HTTP as a clinician's app holding user/*.cruds."""
    with TestClient(
        app, base_url=TEST_BASE_URL, raise_server_exceptions=False, headers=auth_headers
    ) as test_client:
        yield test_client


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LiveServer:
    """The app served by uvicorn on a real port, in a background thread."""

    def __init__(self, app: FastAPI, port: int, database: Database) -> None:
        self.app = app
        self.database = database
        self.base_url = f"http://127.0.0.1:{port}"
        self.fhir_url = f"{self.base_url}/fhir"
        # Headers of a clinician's app holding user/*.cruds (set by the fixture).
        self.headers: dict[str, str] = {}
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def token(self, **claims: Any) -> str:
        """An access token for this server (keyword arguments as issue_access_token)."""
        return issue_access_token(self.app, self.database, **claims)

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("The live server did not start within 10 s")
            time.sleep(0.02)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


@pytest.fixture
def live_server(database: Database) -> Iterator[LiveServer]:
    port = _free_port()
    settings = make_settings(database.url, base_url=f"http://127.0.0.1:{port}")
    server = LiveServer(create_app(settings, database=database, migrate=False), port, database)
    server.headers = bearer(server.token())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (Synthea bundles and HL7 examples); tests skip without it."""
    if not (SHARED_DATA / "synthea").is_dir():
        pytest.skip(f"shared test data not found at {SHARED_DATA}")
    return SHARED_DATA


class StoredRecords:
    """What the database holds, read as the system (`Repository.system`, no consent):
    for tests of ingest and seeding that check what was stored, not who may see it.
    Who may see what is tested over HTTP with real tokens (tests/access/)."""

    def __init__(self, app: FastAPI, database: Database) -> None:
        self._app = app
        self._database = database

    def search(self, query: str) -> dict[str, Any]:
        """The searchset Bundle of `Type?params`, as GET /fhir/Type?params would give it."""
        from urllib.parse import parse_qsl

        from health.db.repository import Repository
        from health.fhir.interactions import Interactions
        from health.fhir.listing import searchset_bundle

        resource_type, _, query_string = query.partition("?")
        config = self._app.state.fhir_config
        with self._database.session(write=False) as session:
            interactions = Interactions(Repository.system(session), config)
            bundle = searchset_bundle(
                interactions,
                base=config.settings.fhir_base_url,
                resource_type=resource_type,
                params=parse_qsl(query_string, keep_blank_values=True),
            )
        # As a client reads it: the stored resources are in it as JSON fragments.
        return orjson.loads(orjson.dumps(bundle))  # type: ignore[no-any-return]

    def resources(self, query: str) -> list[dict[str, Any]]:
        """The matches of a search that fits one page (asserted)."""
        bundle = self.search(query)
        assert "next" not in {link["relation"] for link in bundle.get("link", [])}, "_count"
        return [e["resource"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]

    def total(self, query: str) -> int:
        separator = "&" if "?" in query else "?"
        return int(self.search(f"{query}{separator}_count=0")["total"])

    def record(self, patient_id: str) -> list[dict[str, Any]]:
        """The patient's compartment: what Patient/$everything lists as matches."""
        from health.db.repository import Repository

        with self._database.session(write=False) as session:
            listed = Repository.system(session).everything(patient_id, limit=1_000_000)
            return [
                orjson.loads(v.body or b"{}")
                for v, in_compartment in listed.entries
                if in_compartment
            ]


@pytest.fixture
def stored(app: FastAPI, database: Database) -> StoredRecords:
    """The stored records as the system sees them (see StoredRecords)."""
    return StoredRecords(app, database)
