"""Merging a pushed Patient into the citizen's one Patient."""

from __future__ import annotations

from typing import Any

from health.access.attribution import merged_identifiers

# Not taken from either side as they are: the id is the stored one, meta is merged.
_SERVER_ELEMENTS = ("id", "meta")


def merge_patient(current: dict[str, Any], pushed: dict[str, Any]) -> dict[str, Any]:
    """The citizen's Patient after a push: what the source sent, over what was known.

    Every identifier any source sent is kept (hospital record numbers next to the
    national ID), crediting every source that sent it (health/access/attribution.py).
    Other elements the push carries replace the stored ones (the newest report of a
    name or an address wins); elements it leaves out stay as they were, so a GP that
    sends no address does not erase the hospital's.
    """
    merged = {k: v for k, v in current.items() if k not in _SERVER_ELEMENTS}
    merged.update({k: v for k, v in pushed.items() if k not in _SERVER_ELEMENTS})
    identifiers = merged_identifiers(current.get("identifier", []), pushed.get("identifier", []))
    if identifiers:
        merged["identifier"] = identifiers
    # Tags and security labels stay; meta.source names the latest source.
    meta = {**current.get("meta", {}), **pushed.get("meta", {})}
    merged["meta"] = {k: v for k, v in meta.items() if k not in ("versionId", "lastUpdated")}
    return merged
