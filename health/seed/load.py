"""Loading the demo world: the directory, then every record pushed by whoever recorded it.

The directory (organisations, locations, clinicians, roles) is written by the system
(`directory.py` says why). Each citizen's record then arrives the way a real one does:
every organisation that holds part of it pushes its part as itself, through the push
path (health.ingest: person matching on the CPR number, source ids, provenance, fact
links), so the record mixes hospital and GP data, each resource naming its source.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from pathlib import Path

from health.db.engine import Database
from health.db.repository import Repository
from health.fhir.bundle_request import parse_bundle
from health.fhir.config import FhirConfig
from health.fhir.interactions import Interactions
from health.fhir.transaction import process_bundle
from health.ingest.bulk import source_actor
from health.ingest.imports import ImportLedger
from health.ingest.pipeline import push_bundle
from health.seed.clients import register_demo_clients
from health.seed.directory import directory_bundle, directory_resources
from health.seed.records import SeedPush, citizen_bundle, world_pushes
from health.seed.world import World, load_world


@dataclass(frozen=True)
class SeedSummary:
    """What a load of the demo world wrote."""

    citizens: int
    pushes_loaded: int
    pushes_skipped: int
    # Resources created, by resource type (Provenance included).
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
    """Load the demo world, one database transaction per push; skip what is loaded.

    The directory entries missing are written first, then the demo organisations'
    backend clients registered (those missing only), then every push not in the import
    ledger yet. A second call creates nothing, and a load that was interrupted resumes
    where it stopped.
    """
    world = world or load_world()
    today = today or date.today()
    created = _write_directory(database, config, world)
    clients = register_demo_clients(database, config, world)
    loaded = skipped = 0
    for push in world_pushes(world):
        pushed = _push(database, config, world, push, today)
        if pushed is None:
            skipped += 1
            continue
        created.update(pushed)
        loaded += 1
    return SeedSummary(
        citizens=len(world.citizens),
        pushes_loaded=loaded,
        pushes_skipped=skipped,
        created=dict(sorted(created.items())),
        clients_registered=len(clients),
    )


def push_digest(world: World, push: SeedPush) -> str:
    """What a push is made from: the world files, the code that renders them, which push.

    This, not the pushed bytes, is what the import ledger keeps for a demo push: the
    Bundle depends on the load date (appointments stay ahead), and a restart on another
    day should skip what is loaded, not push it again. A changed world or generator
    pushes everything again, which the push path turns into new versions, never copies.
    """
    made_from = f"{_generator_digest()}|{world.digest}|{push.name}"
    return hashlib.sha256(made_from.encode()).hexdigest()


@cache
def _generator_digest() -> str:
    digest = hashlib.sha256()
    for module in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(module.read_bytes())
    return digest.hexdigest()


def _write_directory(database: Database, config: FhirConfig, world: World) -> Counter[str]:
    """Write the directory entries not there yet (by id); what was created, by type."""
    with database.session(write=True) as session:
        # The directory is curated, not pushed: the system writes it (directory.py).
        interactions = Interactions(Repository.system(session), config)
        missing = [
            resource
            for resource in directory_resources(world)
            if _absent(interactions, resource["resourceType"], resource["id"])
        ]
        if missing:
            base = config.settings.fhir_base_url
            bundle = parse_bundle(
                directory_bundle(missing),
                config.types,
                base=base,
                max_entries=config.settings.max_bundle_entries,
            )
            process_bundle(interactions, bundle, base=base, prefer=None)
            interactions.flush()
    return Counter(w.resource_type for w in interactions.written if w.is_first_version)


def _absent(interactions: Interactions, resource_type: str, resource_id: str) -> bool:
    current = interactions.repository.current(resource_type, resource_id)
    return current is None or current.deleted


def _push(
    database: Database, config: FhirConfig, world: World, push: SeedPush, today: date
) -> Counter[str] | None:
    """Push one organisation's part of one citizen's record as that organisation.

    Returns what it created, by type; None if the ledger has it loaded already. The
    push and its ledger entry are one transaction.
    """
    organisation = push.organisation
    digest = push_digest(world, push)
    base = config.settings.fhir_base_url
    with database.session(write=True) as session:
        ledger = ImportLedger(session)
        if ledger.seen(digest, organisation.key):
            return None
        # The directory gave the Organization its key as id: that id is the source.
        actor = source_actor(organisation.key, organisation.name)
        interactions = Interactions(Repository(session, actor), config)
        bundle = parse_bundle(
            citizen_bundle(world, push.citizen, organisation, today),
            config.types,
            base=base,
            max_entries=config.settings.max_bundle_entries,
        )
        push_bundle(interactions, bundle, base=base, prefer=None)
        ledger.record(digest, organisation.key, f"seed_data/world.json: {push.name}", 0)
    return Counter(w.resource_type for w in interactions.written if w.is_first_version)
