"""The access log under test: entries to append, and the log on the test database."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from health.audit.entries import AuditEntry
from health.audit.log import AuditLog
from health.db.engine import Database

AUDIT_KEY = b"test-audit-key-of-at-least-32-characters"
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _disclosure(
    patient_id: str = "anna",
    *,
    agent: str = "Practitioner/bo",
    purpose: str = "treatment",
    action: str = "read",
    outcome: str = "success",
    entities: tuple[str, ...] | None = None,
    detail: str | None = None,
) -> AuditEntry:
    """A clinician's look at a citizen's record (keyword arguments change it)."""
    return AuditEntry(
        action=action,
        outcome=outcome,  # type: ignore[arg-type]
        purpose=purpose,  # type: ignore[arg-type]
        agent_kind="clinician",
        agent=agent,
        agent_name="Bo Jensen",
        organization="Organization/nordhavn",
        client_id="test-app",
        on_behalf_of=None,
        patient_id=patient_id,
        entities=entities if entities is not None else (f"Observation/{patient_id}-1",),
        detail=detail,
    )


AppendRows = Callable[..., None]
MakeEntry = Callable[..., AuditEntry]


@pytest.fixture
def audit_key() -> bytes:
    return AUDIT_KEY


@pytest.fixture
def start() -> datetime:
    """When the test's first row is recorded."""
    return START


@pytest.fixture
def make_entry() -> MakeEntry:
    """A clinician's look at a citizen's record: make_entry(patient_id, **changes)."""
    return _disclosure


@pytest.fixture
def append(database: Database) -> AppendRows:
    """Append entries to the test database's log, one transaction each call."""

    def append_rows(*entries: AuditEntry, at: datetime = START) -> None:
        with database.session(write=True) as session:
            AuditLog(session, AUDIT_KEY).append(list(entries), at)

    return append_rows


@pytest.fixture
def log_rows(append: AppendRows) -> None:
    """Five rows (seq 1 to 5), a minute apart, about anna, bo, anna, carl, anna."""
    for minute, patient in enumerate(["anna", "bo", "anna", "carl", "anna"]):
        append(_disclosure(patient), at=START + timedelta(minutes=minute))
