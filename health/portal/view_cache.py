"""A per-process cache of shaped views of a record (the timeline), per reader.

Shaping a whole record into contacts and life events takes hundreds of milliseconds
for a citizen with thousands of entries, and the record rarely changes between two
pages. An entry is the view of what one actor may see of one patient's record, keyed
by who reads (the citizen, or the proxy with the right they act under), whose record,
a stamp of that record as the actor sees it (`Repository.compartment_stamp`, read
through the actor's own repository on every request, so a write or a deletion makes
a new key) and the hour (views that depend on the clock, such as a medicine that has
ended by now, are at most an hour old). Nothing is shared between readers, and what
a page shows from a cached view is still disclosed to the access log by the page.
The cache is bounded by the number of resources its views were shaped from; the
least recently used views go first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from health.access.actor import Actor
from health.db.versions import StoredVersion

# Resources the cached views of one process were shaped from, at most: about 40
# citizens with the benchmark's 5,000 entries each.
MAX_RESOURCES = 200_000


@dataclass(frozen=True)
class CachedView:
    """A shaped view and the versions it was shaped from (to disclose what is shown)."""

    view: Any
    looked_up: Mapping[str, StoredVersion]
    # How many resources it was shaped from: its share of the size bound.
    weight: int


def view_key(
    name: str, actor: Actor, patient_id: str, stamp: Hashable, now: datetime
) -> tuple[Hashable, ...]:
    """Who reads (a proxy apart from the citizen), whose record, its stamp, the hour."""
    proxy = actor.proxy
    return (
        name,
        actor.kind.value,
        actor.fhir_user,
        actor.national_id,
        proxy.related_person_id if proxy else None,
        str(proxy.basis) if proxy else None,
        actor.patient_id,
        patient_id,
        stamp,
        now.strftime("%Y-%m-%dT%H"),
    )


class ViewCache:
    """Least recently used views, at most `max_resources` resources' worth; thread-safe
    (the portal's pages run in a thread pool)."""

    def __init__(self, max_resources: int = MAX_RESOURCES) -> None:
        self.max_resources = max_resources
        self._views: OrderedDict[Hashable, CachedView] = OrderedDict()
        self._weight = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> CachedView | None:
        with self._lock:
            found = self._views.get(key)
            if found is not None:
                self._views.move_to_end(key)
            return found

    def put(self, key: Hashable, cached: CachedView) -> None:
        if cached.weight > self.max_resources:
            return
        with self._lock:
            previous = self._views.pop(key, None)
            if previous is not None:
                self._weight -= previous.weight
            self._views[key] = cached
            self._weight += cached.weight
            while self._weight > self.max_resources:
                _, dropped = self._views.popitem(last=False)
                self._weight -= dropped.weight

    def get_or_shape(self, key: Hashable | None, shape: Callable[[], CachedView]) -> CachedView:
        """The cached view under `key`, else `shape()` (kept when there is a key)."""
        found = self.get(key) if key is not None else None
        if found is None:
            found = shape()
            if key is not None:
                self.put(key, found)
        return found

    def __len__(self) -> int:
        return len(self._views)


_CREATING = threading.Lock()


def view_cache_of(state: Any) -> ViewCache:
    """The app's one cache (on `app.state`: one per app, so tests never share one)."""
    with _CREATING:
        cache = getattr(state, "portal_view_cache", None)
        if cache is None:
            cache = ViewCache()
            state.portal_view_cache = cache
        return cache  # type: ignore[no-any-return]
