"""What the repository hands out and takes in: stored versions, writes, search pages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from health.fhir.search.index_rows import IndexRows


@dataclass(frozen=True)
class StoredVersion:
    """One version of a resource as stored (body is None for a deletion)."""

    resource_type: str
    id: str
    version_id: int
    last_updated: datetime
    deleted: bool
    body: bytes | None
    method: str = "PUT"
    seq: int | None = None
    # The patient whose compartment it is in, and who recorded it (health.access).
    patient_id: str | None = None
    recorded_by: str | None = None

    def without_body(self) -> StoredVersion:
        """The version's facts without its body (what a page keeps of a lookup, to log
        what it shows); built field by field, several times faster than
        `dataclasses.replace`, which matters for the thousands a record has."""
        return StoredVersion(
            self.resource_type,
            self.id,
            self.version_id,
            self.last_updated,
            self.deleted,
            None,
            self.method,
            self.seq,
            self.patient_id,
            self.recorded_by,
        )


@dataclass
class Write:
    """A new version to persist: computed by the FHIR layer, stored by `save`."""

    resource_type: str
    id: str
    version_id: int
    last_updated: datetime
    method: str
    body: bytes | None
    patient_id: str | None = None
    index: IndexRows = field(default_factory=IndexRows)
    # Set by the repository from its actor when saving (health.access.recorder); a
    # reindex keeps the stored one.
    recorded_by: str | None = None

    @property
    def deleted(self) -> bool:
        return self.body is None

    @property
    def is_first_version(self) -> bool:
        return self.version_id == 1

    def as_stored(self) -> StoredVersion:
        return StoredVersion(
            resource_type=self.resource_type,
            id=self.id,
            version_id=self.version_id,
            last_updated=self.last_updated,
            deleted=self.deleted,
            body=self.body,
            method=self.method,
            patient_id=self.patient_id,
            recorded_by=self.recorded_by,
        )


@dataclass
class SearchPage:
    """A page of search matches, the total (None when not asked for) and paging cursors."""

    matches: list[StoredVersion] = field(default_factory=list)
    total: int | None = None
    next_cursor: str | None = None
    previous_cursor: str | None = None


@dataclass
class EverythingPage:
    """A page of Patient/$everything and whether another page follows it.

    Each entry: the resource, and whether it is in the patient's compartment (or
    there because the record refers to it).
    """

    entries: list[tuple[StoredVersion, bool]] = field(default_factory=list)
    more: bool = False


def stored_version(row: Any) -> StoredVersion:
    """A row of `resource` or of `resource_version` (which adds method and seq)."""
    return stored_versions(row._fields, [row])[0]


def stored_versions(keys: Sequence[str], rows: Sequence[Any]) -> list[StoredVersion]:
    """Rows of `resource` or `resource_version` columns, named by `keys` in order. The
    columns are found by name once and read by position: naming them in every row (a
    Row's mapping, or `_asdict`) was a third of the cost of reading a timeline's rows."""
    at = {name: number for number, name in enumerate(keys)}
    kind, key, version, updated = (
        at["resource_type"],
        at["id"],
        at["version_id"],
        at["last_updated"],
    )
    deleted, body = at["deleted"], at["body"]
    method, seq = at.get("method"), at.get("seq")
    patient, recorder = at.get("patient_id"), at.get("recorded_by")
    return [
        StoredVersion(
            resource_type=row[kind],
            id=row[key],
            version_id=row[version],
            last_updated=row[updated],
            deleted=row[deleted],
            body=row[body],
            method="PUT" if method is None else row[method],
            seq=None if seq is None else row[seq],
            patient_id=None if patient is None else row[patient],
            recorded_by=None if recorder is None else row[recorder],
        )
        for row in rows
    ]
