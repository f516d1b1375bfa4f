"""The garbage collector's settings for a serving process (health/asgi.py), which the
benchmarks apply too (bench/portal.py), so that they measure what a server does.

A portal page builds tens of thousands of objects that live until it is rendered. With
the collector's defaults (a young collection every 700 allocations) those are scanned
again and again while alive, and every few requests a full collection walks the whole
heap: 13 ms of a cold timeline's 112 on average, and most of its slowest requests
(docs/BENCHMARKS.md, "Portal"). Most garbage is freed by reference counting anyway;
the collector is only for cycles.
"""

import gc

# A young collection every 20,000 allocations, the older generations rarely.
THRESHOLDS = (20_000, 50, 100)


def settle_heap() -> None:
    """Collect what starting up left behind, move what lives for the process (modules,
    FHIR models, search definitions, compiled extractors) out of the collector's
    generations, and collect less often from now on."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
