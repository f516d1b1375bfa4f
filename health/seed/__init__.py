"""The demo world: organisations, clinicians and citizens with their records.

`world` reads seed_data/, `records` turns it into FHIR transaction Bundles, and `load`
stores them through the ordinary Bundle path.
"""

from health.seed.load import SeedSummary, seed_demo_world
from health.seed.records import SeedBundle, world_bundles
from health.seed.world import DemoPerson, PersonRole, World, demo_persons, load_world

__all__ = [
    "DemoPerson",
    "PersonRole",
    "SeedBundle",
    "SeedSummary",
    "World",
    "demo_persons",
    "load_world",
    "seed_demo_world",
    "world_bundles",
]
