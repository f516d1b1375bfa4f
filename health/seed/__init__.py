"""The demo world: organisations, clinicians and citizens with their records.

`world` reads seed_data/, `records` turns it into FHIR transaction Bundles, and `load`
stores them through the ordinary Bundle path; `clients` registers each organisation's
backend client, whose private key ships in seed_data/keys/.
"""

from health.seed.clients import DemoClient, demo_clients, register_demo_clients
from health.seed.load import SeedSummary, seed_demo_world
from health.seed.records import SeedBundle, world_bundles
from health.seed.world import DemoPerson, PersonRole, World, demo_persons, load_world

__all__ = [
    "DemoClient",
    "DemoPerson",
    "PersonRole",
    "SeedBundle",
    "SeedSummary",
    "World",
    "demo_clients",
    "demo_persons",
    "load_world",
    "register_demo_clients",
    "seed_demo_world",
    "world_bundles",
]
