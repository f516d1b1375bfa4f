"""The ASGI application for uvicorn workers: settings from the environment."""

import gc

from health.app import create_app
from health.settings import Settings

app = create_app(Settings())

# What is alive now (modules, the FHIR models, the search definitions and compiled
# extractors) lives as long as the process: moved out of the collector's generations,
# so that the full collections a busy worker runs no longer walk it each time (they
# were most of the portal's slowest requests: docs/BENCHMARKS.md, "Portal").
gc.collect()
gc.freeze()
