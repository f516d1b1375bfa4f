"""Who is asking: the caller a Repository computes its visible scope for."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ActorKind(StrEnum):
    # Ingest, seeding, migrations and maintenance commands: sees and writes everything.
    system = "system"


@dataclass(frozen=True)
class Actor:
    kind: ActorKind
    # What the caller is called in logs and error messages.
    display: str


SYSTEM = Actor(kind=ActorKind.system, display="system")
