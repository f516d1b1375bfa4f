"""The development eID: an OpenID Connect provider at /eid, the stand-in for MitID/DigiD.

Mounted by create_app when HEALTH_DEV_EID is on; HEALTH_ENV=production refuses it.
"""

from __future__ import annotations

from fastapi import FastAPI

from health.auth.keys import load_signing_key
from health.eid.routes import router
from health.eid.server import EidServer
from health.settings import Settings


def mount_development_eid(app: FastAPI, settings: Settings) -> None:
    """Serve the development eID under /eid, with its signing key (made once if missing)."""
    signing_key = load_signing_key(
        settings.eid_signing_key_path, create=settings.eid_signing_key_file is None
    )
    app.state.eid_server = EidServer(settings, signing_key)
    app.include_router(router)
