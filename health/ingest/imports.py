"""The import ledger: what was loaded (a file, a demo push), by content hash, per source."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from health.db.tables import import_file


class ImportLedger:
    def __init__(self, session: Session) -> None:
        self._session = session

    def seen(self, digest: str, organization_id: str) -> bool:
        found = self._session.execute(
            select(import_file.c.content_hash).where(
                import_file.c.content_hash == digest,
                import_file.c.organization_id == organization_id,
            )
        ).first()
        return found is not None

    def record(self, digest: str, organization_id: str, path: str, rejected_entries: int) -> None:
        self._session.execute(
            insert(import_file).values(
                content_hash=digest,
                organization_id=organization_id,
                path=path[:1024],
                rejected_entries=rejected_entries,
                imported_at=datetime.now(UTC),
            )
        )
