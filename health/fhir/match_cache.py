"""What conditional criteria matched within one unit of work (a request or a Bundle),
kept across its writes wherever no write could have changed it.

A batch Bundle writes after every entry, and its entries name things by condition: a
provider directory's `identifier=system|value` on each Organization and Practitioner,
an NDJSON file's `Patient?identifier=...` references. Forgotten at every write, each
would be looked up again, one or two statements per entry.

A condition that is one `identifier=system|value`, looked up under a scope that
decides each row by its own columns (health.db.access_sql.decided_by_row), can change
only through a write of its type that carries that identifier, or that replaces or
deletes a resource it matched: such a write drops it. Any other condition is dropped
by every write.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from health.db.versions import StoredVersion, Write

# (resource type, criteria hash): what makes two conditions the same.
MatchKey = tuple[str, str]
_Where = TypeVar("_Where")


@dataclass(frozen=True)
class _Matched:
    versions: list[StoredVersion]
    # (system, value) when only a write of that identifier, or of a matched resource,
    # can change the result; None when any write can.
    identifier: tuple[str, str] | None
    # When it was remembered, for `forget_since`.
    generation: int


class MatchCache:
    """Conditions' matches by MatchKey, each dropped by the first write that could change it."""

    def __init__(self) -> None:
        self._entries: dict[MatchKey, _Matched] = {}
        self._by_identifier: dict[tuple[str, str, str], set[MatchKey]] = {}
        self._by_resource: dict[tuple[str, str], set[MatchKey]] = {}
        self._any_write: set[MatchKey] = set()
        self._generation = 0

    def __contains__(self, key: MatchKey) -> bool:
        return key in self._entries

    def get(self, key: MatchKey) -> list[StoredVersion] | None:
        matched = self._entries.get(key)
        return None if matched is None else matched.versions

    def remember(
        self,
        key: MatchKey,
        versions: list[StoredVersion],
        *,
        identifier: tuple[str, str] | None = None,
    ) -> None:
        """Keep what `key` matched. `identifier`: the condition is that one identifier,
        under a scope decided by each row; without it, the next write drops it."""
        self._drop(key)
        self._generation += 1
        self._entries[key] = _Matched(versions, identifier, self._generation)
        resource_type = key[0]
        if identifier is None:
            self._any_write.add(key)
            return
        self._by_identifier.setdefault((resource_type, *identifier), set()).add(key)
        for version in versions:
            self._by_resource.setdefault((resource_type, version.id), set()).add(key)

    def written(self, write: Write) -> None:
        """Drop what `write` may have changed: a new version, a new resource or a
        deletion of `write.resource_type`."""
        if not self._entries:
            return
        stale = set(self._any_write)
        stale.update(self._by_resource.get((write.resource_type, write.id), ()))
        for param, system, code, _text in write.index.tokens:
            if param == "identifier" and system is not None and code is not None:
                stale.update(self._by_identifier.get((write.resource_type, system, code), ()))
        for key in stale:
            self._drop(key)

    def mark(self) -> int:
        """A point to `forget_since`."""
        return self._generation

    def forget_since(self, mark: int) -> None:
        """Drop what was remembered after `mark`: the writes it may have seen were
        rolled back (a failed batch entry). What was remembered before saw none of
        them, and those writes dropped whatever of it they changed."""
        for key in [k for k, m in self._entries.items() if m.generation > mark]:
            self._drop(key)

    def clear(self) -> None:
        self._entries.clear()
        self._by_identifier.clear()
        self._by_resource.clear()
        self._any_write.clear()

    def _drop(self, key: MatchKey) -> None:
        matched = self._entries.pop(key, None)
        if matched is None:
            return
        resource_type = key[0]
        if matched.identifier is None:
            self._any_write.discard(key)
            return
        _discard(self._by_identifier, (resource_type, *matched.identifier), key)
        for version in matched.versions:
            _discard(self._by_resource, (resource_type, version.id), key)


def _discard(index: dict[_Where, set[MatchKey]], where: _Where, key: MatchKey) -> None:
    keys = index.get(where)
    if keys is not None:
        keys.discard(key)
        if not keys:
            del index[where]
