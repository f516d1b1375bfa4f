"""Loading the demo world into a database, through the same Bundle path as a push."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import orjson

from health.db.engine import Database
from health.db.repository import Repository
from health.fhir.bundle_request import parse_bundle
from health.fhir.config import FhirConfig
from health.fhir.interactions import Interactions
from health.fhir.transaction import process_bundle
from health.seed.clients import register_demo_clients
from health.seed.records import SeedBundle, world_bundles
from health.seed.world import World, load_world


@dataclass(frozen=True)
class SeedSummary:
    """What a load of the demo world wrote."""

    citizens: int
    bundles_loaded: int
    bundles_skipped: int
    # Resources created, by resource type.
    created: dict[str, int] = field(default_factory=dict)
    # Demo backend clients registered by this load (health.seed.clients).
    clients_registered: int = 0

    @property
    def total(self) -> int:
        return sum(self.created.values())


def seed_demo_world(
    database: Database,
    config: FhirConfig,
    *,
    world: World | None = None,
    today: date | None = None,
) -> SeedSummary:
    """Load the demo world, one database transaction per Bundle; skip what is loaded.

    A Bundle counts as loaded when the resource named by its marker exists, so a second
    call creates nothing, and a load that was interrupted resumes where it stopped.
    The demo organisations' backend clients are registered last, those missing only.
    """
    world = world or load_world()
    created: Counter[str] = Counter()
    loaded = skipped = 0
    for seed in world_bundles(world, today or date.today()):
        with database.session(write=True) as session:
            # Seeding writes every citizen's record: it runs with system privilege.
            interactions = Interactions(Repository.system(session), config)
            if _is_loaded(interactions, seed):
                skipped += 1
                continue
            # Processing rewrites references in place: parse a copy.
            base = config.settings.fhir_base_url
            bundle = parse_bundle(
                orjson.loads(orjson.dumps(seed.bundle)),
                config.types,
                base=base,
                max_entries=config.settings.max_bundle_entries,
            )
            response = process_bundle(interactions, bundle, base=base, prefer=None)
            interactions.flush()
        created.update(_created_types(response))
        loaded += 1
    clients = register_demo_clients(database, config, world)
    return SeedSummary(
        citizens=len(world.citizens),
        bundles_loaded=loaded,
        bundles_skipped=skipped,
        created=dict(sorted(created.items())),
        clients_registered=len(clients),
    )


def _is_loaded(interactions: Interactions, seed: SeedBundle) -> bool:
    resource_type, query = seed.marker
    return bool(interactions.match(resource_type, query))


def _created_types(response: dict[str, Any]) -> list[str]:
    return [
        entry["response"]["location"].split("/", 1)[0]
        for entry in response["entry"]
        if entry["response"]["status"].startswith("201")
    ]
