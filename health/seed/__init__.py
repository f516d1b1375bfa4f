"""The demo world: organisations, clinicians and citizens with their records.

`world` reads seed_data/, `directory` and `records` turn it into FHIR (the directory,
and one transaction Bundle per citizen and organisation), and `load` writes the
directory and pushes each Bundle through the push path as the organisation that
recorded it; `clients` registers each organisation's backend client, whose private
key ships in seed_data/keys/.
"""

from health.seed.clients import DemoClient, demo_clients, register_demo_clients
from health.seed.load import SeedSummary, seed_demo_world
from health.seed.records import SeedPush, citizen_bundle, world_pushes
from health.seed.world import DemoPerson, PersonRole, World, demo_persons, load_world

__all__ = [
    "DemoClient",
    "DemoPerson",
    "PersonRole",
    "SeedPush",
    "SeedSummary",
    "World",
    "citizen_bundle",
    "demo_clients",
    "demo_persons",
    "load_world",
    "register_demo_clients",
    "seed_demo_world",
    "world_pushes",
]
