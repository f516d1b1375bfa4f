"""The demo world's backend clients: each organisation's record system, with its key.

Every demo organisation gets a SMART Backend Services client with a fixed client_id
(`demo-<organisation key>`) and an EC P-384 key (ES384) whose private half ships in
seed_data/keys/, so that anyone can push to or read from the demo as that hospital or
GP practice. Because those private keys are public, the clients are registered as demo
clients, and production refuses to start while any is registered.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from health.auth.backend_client import DEFAULT_SCOPE, BackendKey
from health.auth.clients import ClientStore
from health.auth.registration import register_backend_client
from health.db.engine import Database
from health.fhir.config import FhirConfig
from health.seed.world import SEED_DATA, SOR_SYSTEM, Organisation, World, load_world

DEMO_KEYS = SEED_DATA / "keys"
# What an organisation's own record system does: push its records, and read and search
# what it may see.
DEMO_CLIENT_SCOPE = DEFAULT_SCOPE


@dataclass(frozen=True)
class DemoClient:
    """One demo organisation's backend client."""

    client_id: str
    organisation: Organisation
    key_path: Path

    @property
    def organization_identifier(self) -> str:
        return f"{SOR_SYSTEM}|{self.organisation.sor}"

    def key(self) -> BackendKey:
        return BackendKey.from_file(self.key_path)


def demo_clients(world: World | None = None) -> list[DemoClient]:
    """The backend clients of the demo organisations, in the world's order."""
    world = world or load_world()
    return [
        DemoClient(
            client_id=f"demo-{organisation.key}",
            organisation=organisation,
            key_path=DEMO_KEYS / f"demo-{organisation.key}.pem",
        )
        for organisation in world.organisations.values()
    ]


def register_demo_clients(
    database: Database, config: FhirConfig, world: World | None = None
) -> list[DemoClient]:
    """Register every demo client not registered yet (one transaction each); the new ones.

    Run after the directory is loaded: each client is bound to its organisation's
    Organization, found by its SOR identifier.
    """
    registered = []
    for client in demo_clients(world):
        with database.session(write=True) as session:
            if ClientStore(session).get(client.client_id) is not None:
                continue
            register_backend_client(
                session,
                config,
                name=f"{client.organisation.name} (demo)",
                organization_identifier=client.organization_identifier,
                organization_name=client.organisation.name,
                jwks=client.key().public_jwks(),
                scope=DEMO_CLIENT_SCOPE,
                client_id=client.client_id,
                demo=True,
            )
        registered.append(client)
    return registered
