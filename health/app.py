"""create_app(settings): the application, assembled from its routers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi.telemetry import TelemetryConfig

from health import PROJECT_ROOT, __version__
from health.audit.routes import router as audit_router
from health.audit.writer import LogWriter
from health.auth.clients import ClientStore
from health.auth.eid_login import EidRelyingParty
from health.auth.keys import load_signing_key
from health.auth.routes import mount_authorization_server
from health.auth.tokens import AccessTokens
from health.db.engine import Database
from health.db.migrate import upgrade_to_head
from health.eid import mount_development_eid
from health.fhir.config import FhirConfig
from health.fhir.http import install_error_handlers
from health.fhir.routes import router as fhir_router
from health.portal.headers import SecurityHeaders
from health.portal.privacy_routes import router as portal_privacy_router
from health.portal.proxy_routes import router as portal_proxy_router
from health.portal.record_routes import router as portal_record_router
from health.portal.routes import router as portal_router
from health.settings import (
    DEVELOPMENT_AUDIT_KEY,
    DEVELOPMENT_SESSION_SECRET,
    Environment,
    Settings,
)

EID_HTTP_TIMEOUT_SECONDS = 10.0
# FastAPI (0.142 on) traces every request, with its query string as `url.query`, and
# logs failed validation and unhandled exceptions with their messages, as soon as an
# OpenTelemetry provider is set up in the process (an operator's auto-instrumentation,
# or OTEL_* variables with auto-configure): a search's national ID would go to the
# tracing backend. The server sends none, as it keeps search strings out of its request
# log (health/request_log.py).
NO_TELEMETRY: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
    "auto_configure": False,
}


class NotReadyForProduction(RuntimeError):
    """Production mode was asked for, but something in the configuration is unsafe."""


def production_problems(settings: Settings) -> list[str]:
    """What in the configuration is unsafe for real health data (empty: nothing)."""
    problems = []
    if settings.dev_eid:
        # Anyone can log in to the development eID as anyone.
        problems.append("the development eID is on (set HEALTH_DEV_EID=false)")
    if settings.eid_issuer is None:
        problems.append("no national eID is configured (HEALTH_EID_ISSUER)")
    elif not settings.eid_client_secret:
        problems.append("this app's secret at the eID is not set (HEALTH_EID_CLIENT_SECRET)")
    if not settings.base_url.startswith("https://"):
        problems.append(f"the base URL {settings.base_url} is not https (HEALTH_BASE_URL)")
    if settings.session_secret == DEVELOPMENT_SESSION_SECRET or len(settings.session_secret) < 32:
        problems.append("the session secret is the default or shorter than 32 characters")
    if settings.auth_signing_key_file is None:
        problems.append(
            "access tokens would be signed with a generated development key "
            "(set HEALTH_AUTH_SIGNING_KEY_FILE)"
        )
    if settings.audit_key == DEVELOPMENT_AUDIT_KEY or len(settings.audit_key) < 32:
        # Anyone with the repository could rewrite the access log and its hashes.
        problems.append(
            "the audit key is the default or shorter than 32 characters (HEALTH_AUDIT_KEY)"
        )
    return problems


def check_production_readiness(settings: Settings, database: Database | None = None) -> None:
    """Refuse HEALTH_ENV=production while anything in production_problems() holds."""
    if settings.env is not Environment.production:
        return
    problems = production_problems(settings)
    if database is not None and _demo_clients_registered(database):
        problems.insert(
            0, "demo clients (whose private keys ship in the repository) are registered"
        )
    raise NotReadyForProduction("HEALTH_ENV=production is refused: " + "; ".join(problems))


def _demo_clients_registered(database: Database) -> bool:
    with database.session(write=False) as session:
        return ClientStore(session).any_demo()


def create_app(
    settings: Settings, *, database: Database | None = None, migrate: bool = True
) -> FastAPI:
    check_production_readiness(settings)
    database = database or Database.of(settings)
    if migrate:
        upgrade_to_head(database.write_engine)
    check_production_readiness(settings, database)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        database.dispose()

    app = FastAPI(
        title="health",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        telemetry=NO_TELEMETRY,
    )
    app.state.settings = settings
    app.state.database = database
    # What read requests disclose goes to the access log through one writer per
    # process, which batches the requests that finish together (health/audit/writer.py).
    app.state.log_writer = LogWriter(database, settings.audit_key.encode())
    app.state.fhir_config = FhirConfig.load(settings)
    auth_signing_key = load_signing_key(
        settings.auth_signing_key_path, create=settings.auth_signing_key_file is None
    )
    app.state.access_tokens = AccessTokens(settings, auth_signing_key)
    # The portal and the authorization server reach the eID over HTTP, as they would the
    # national eID broker (tests may put in a relying party whose client serves this app
    # in-process). The client is not closed at shutdown: a later lifespan of the same
    # app (tests run several) would find it closed.
    app.state.eid_relying_party = EidRelyingParty(
        settings, httpx.Client(timeout=EID_HTTP_TIMEOUT_SECONDS)
    )
    install_error_handlers(app)
    # Before the generic type routes: AuditEvent is answered from the access log.
    app.include_router(audit_router)
    app.include_router(fhir_router)
    app.include_router(portal_router)
    app.include_router(portal_record_router)
    app.include_router(portal_privacy_router)
    app.include_router(portal_proxy_router)
    # The stylesheets of every page (no inline styles: the pages' CSP forbids them).
    app.mount("/static", StaticFiles(directory=PROJECT_ROOT / "static"), name="static")
    app.add_middleware(SecurityHeaders, eid_issuer=settings.eid_issuer)
    mount_authorization_server(app, settings, auth_signing_key)
    if settings.dev_eid:
        mount_development_eid(app, settings)
    return app
