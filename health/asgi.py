"""The ASGI application for uvicorn workers: settings from the environment."""

from health.app import create_app
from health.settings import Settings

app = create_app(Settings())
