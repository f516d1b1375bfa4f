"""The actor behind an HTTP request."""

from __future__ import annotations

from fastapi import Request

from health.access.actor import SYSTEM, Actor


def actor_for_request(request: Request) -> Actor:
    """Who is calling.

    Bearer-token verification is not built yet (it is the eID and tokens issue), so
    every caller acts as the system. That is why production mode refuses to start
    (health.app.check_production_readiness): no real data may sit behind this.
    """
    del request
    return SYSTEM
