"""Rebuild the search index and compartments after the definitions change (health reindex)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import orjson

from health.db.engine import Database
from health.db.repository import Repository
from health.db.versions import Write
from health.fhir.config import FhirConfig

BATCH_SIZE = 500


def reindex(
    database: Database,
    config: FhirConfig,
    *,
    resource_type: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> Counter[str]:
    """Re-extract every current resource's index rows and patient compartment.

    Runs in batches, one database transaction each, so a large database is not held
    in one transaction; reindexing again after an interruption is harmless.
    """
    counts: Counter[str] = Counter()
    after: tuple[str, str] | None = None
    while True:
        with database.session(write=True) as session:
            # Maintenance sees and rewrites every record: system privilege.
            repository = Repository.system(session)
            page = repository.current_page(
                resource_type=resource_type, after=after, limit=BATCH_SIZE
            )
            if not page:
                return counts
            entries = []
            for version in page:
                body = orjson.loads(version.body or b"{}")
                entries.append(
                    Write(
                        resource_type=version.resource_type,
                        id=version.id,
                        version_id=version.version_id,
                        last_updated=version.last_updated,
                        method=version.method,
                        body=version.body,
                        patient_id=config.compartment.patient_of(body, version.id),
                        index=config.extractor.extract(body),
                        recorded_by=version.recorded_by,
                    )
                )
                counts[version.resource_type] += 1
            repository.replace_index(entries)
        after = (page[-1].resource_type, page[-1].id)
        if progress is not None:
            progress(len(page))
