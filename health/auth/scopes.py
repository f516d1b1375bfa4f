"""SMART clinical scopes: parsing (v1 and v2 syntax) and what they permit.

https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html. A scope is
`context/ResourceType.permissions`: context `patient`, `user` or `system`; `*` for every
type; permissions in v2 as letters c r u d s (create, read, update, delete, search, in
that order), in v1 as `read` (= rs), `write` (= cud) or `*` (= cruds).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

_CLINICAL = re.compile(
    r"^(?P<context>patient|user|system)/(?P<type>\*|[A-Z][A-Za-z]{0,63})"
    r"\.(?P<permissions>\*|read|write|c?r?u?d?s?)(?P<query>\?.*)?$"
)
_V1 = {"read": "rs", "write": "cud", "*": "cruds"}
# Scopes that are not about resources: identity, launch context, refresh tokens.
NON_CLINICAL = frozenset(
    {
        "openid",
        "fhirUser",
        "profile",
        "launch",
        "launch/patient",
        "launch/encounter",
        "offline_access",
        "online_access",
    }
)


class Context(StrEnum):
    patient = "patient"
    user = "user"
    system = "system"


class Permission(StrEnum):
    """What an interaction needs, as the v2 letter that grants it."""

    create = "c"
    read = "r"
    update = "u"
    delete = "d"
    search = "s"


class ScopeError(ValueError):
    """A scope string that is not a SMART scope this server understands."""


@dataclass(frozen=True)
class ClinicalScope:
    context: Context
    resource_type: str  # a type name, or "*"
    permissions: frozenset[Permission]

    def covers(self, permission: Permission, resource_type: str) -> bool:
        return permission in self.permissions and self.resource_type in ("*", resource_type)


def parse_clinical(scope: str) -> ClinicalScope | None:
    """The clinical scope `scope` names, None for a non-clinical one; ScopeError otherwise.

    v2 scopes with search parameters (`patient/Observation.rs?category=laboratory`) are
    refused: this server cannot confine a grant to a search yet, and granting the whole
    type instead would give more than was asked for.
    """
    if scope in NON_CLINICAL:
        return None
    match = _CLINICAL.match(scope)
    if match is None or not match["permissions"]:
        raise ScopeError(f"{scope!r} is not a SMART scope")
    if match["query"]:
        raise ScopeError(f"{scope!r}: scopes limited by search parameters are not supported")
    letters = _V1.get(match["permissions"], match["permissions"])
    return ClinicalScope(
        context=Context(match["context"]),
        resource_type=match["type"],
        permissions=frozenset(Permission(letter) for letter in letters),
    )


@dataclass(frozen=True)
class Scopes:
    """A granted scope string, parsed: what it permits on which types."""

    granted: tuple[str, ...]
    clinical: tuple[ClinicalScope, ...]

    @classmethod
    def parse(cls, scope: str) -> Scopes:
        """Every scope in the space-separated `scope`; ScopeError names the first bad one."""
        granted = tuple(dict.fromkeys(scope.split()))
        clinical = tuple(c for c in map(parse_clinical, granted) if c is not None)
        return cls(granted=granted, clinical=clinical)

    def __str__(self) -> str:
        return " ".join(self.granted)

    def __contains__(self, scope: str) -> bool:
        return scope in self.granted

    @property
    def contexts(self) -> frozenset[Context]:
        return frozenset(c.context for c in self.clinical)

    def allows(self, permission: Permission, resource_type: str) -> bool:
        return any(c.covers(permission, resource_type) for c in self.clinical)

    def readable_types(self) -> frozenset[str] | None:
        """The types whose resources the holder may read (directly or as includes);
        None when a wildcard scope lets them read every type."""
        readers = [c for c in self.clinical if Permission.read in c.permissions]
        if any(c.resource_type == "*" for c in readers):
            return None
        return frozenset(c.resource_type for c in readers)

    def within(self, allowed: Scopes) -> Scopes:
        """The scopes of this request that `allowed` covers (what a client may be granted)."""
        kept = [
            scope
            for scope in self.granted
            if (parsed := parse_clinical(scope)) is None or _covered(parsed, allowed.clinical)
        ]
        return Scopes.parse(" ".join(kept))


def _covered(wanted: ClinicalScope, allowed: Iterable[ClinicalScope]) -> bool:
    """Whether some allowed scope gives at least `wanted`, in the same context."""
    return any(
        a.context is wanted.context
        and a.resource_type in ("*", wanted.resource_type)
        and wanted.permissions <= a.permissions
        for a in allowed
    )
