"""What the repository hands out and takes in: stored versions, writes, search pages."""

from __future__ import annotations

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


def stored_version(row: Any) -> StoredVersion:
    """A row of `resource` or of `resource_version` (which adds method and seq)."""
    # A plain dict: a Row's mapping answers a missing column (a current row's method)
    # by raising and catching inside, a third of the cost of reading a timeline's rows.
    columns = row._asdict()
    return StoredVersion(
        resource_type=columns["resource_type"],
        id=columns["id"],
        version_id=columns["version_id"],
        last_updated=columns["last_updated"],
        deleted=columns["deleted"],
        body=columns["body"],
        method=columns.get("method", "PUT"),
        seq=columns.get("seq"),
        patient_id=columns.get("patient_id"),
        recorded_by=columns.get("recorded_by"),
    )
