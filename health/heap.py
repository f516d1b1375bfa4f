"""The garbage collector's preparation of a serving process (health/asgi.py), which the
benchmarks apply too (bench/portal.py), so that they measure what a server does."""

import gc


def settle_heap() -> None:
    """Collect what starting up left behind, and move what lives for the process
    (modules, FHIR models, search definitions, compiled extractors) out of the
    collector's generations: the full collections a busy worker runs no longer walk it
    each time (they were most of the portal's slowest requests: docs/BENCHMARKS.md,
    "Portal").

    The collector's thresholds stay as they are: a young generation of 20,000 halved
    the young collections of a cold timeline, but let the middle one grow until a
    collection of it took 400 ms."""
    gc.collect()
    gc.freeze()
