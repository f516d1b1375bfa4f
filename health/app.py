"""create_app(settings): the application, assembled from its routers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from health import __version__
from health.db.engine import Database
from health.db.migrate import upgrade_to_head
from health.eid import mount_development_eid
from health.fhir.config import FhirConfig
from health.fhir.http import install_error_handlers
from health.fhir.routes import router as fhir_router
from health.settings import Environment, Settings


class NotReadyForProduction(RuntimeError):
    """Production mode was asked for, but something in the configuration is unsafe."""


def check_production_readiness(settings: Settings) -> None:
    if settings.env is not Environment.production:
        return
    if settings.dev_eid:
        # Anyone can log in to the development eID as anyone: it must never sit in front
        # of real health data.
        raise NotReadyForProduction(
            "HEALTH_ENV=production is refused with the development eID on: set "
            "HEALTH_DEV_EID=false and configure the national eID"
        )
    # Tokens are not verified yet (the eID and tokens issue), so every /fhir caller
    # would act as the system: refuse rather than serve health data to anyone.
    raise NotReadyForProduction(
        "HEALTH_ENV=production is refused: access tokens are not verified yet, so the "
        "FHIR API would be open to anyone"
    )


def create_app(
    settings: Settings, *, database: Database | None = None, migrate: bool = True
) -> FastAPI:
    check_production_readiness(settings)
    database = database or Database(settings.database_url, echo=settings.sql_echo)
    if migrate:
        upgrade_to_head(database.write_engine)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        database.dispose()

    app = FastAPI(
        title="health", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None
    )
    app.state.settings = settings
    app.state.database = database
    app.state.fhir_config = FhirConfig.load(settings)
    install_error_handlers(app)
    app.include_router(fhir_router)
    if settings.dev_eid:
        mount_development_eid(app, settings)
    return app
