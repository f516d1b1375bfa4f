"""The ASGI application for uvicorn workers: settings from the environment."""

from health.app import create_app
from health.heap import settle_heap
from health.settings import Settings

app = create_app(Settings())

# What is alive now lives as long as the process: out of the collector's way
# (health/heap.py).
settle_heap()
