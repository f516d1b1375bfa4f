"""What a row's hash covers: every column, so no column can change unnoticed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from health.audit.entries import HASHED_COLUMNS, chain_hash, row_columns

# tests/audit/conftest.py: make_entry(patient_id, **changes) -> AuditEntry.
MakeEntry = Any


@pytest.fixture
def columns(make_entry: MakeEntry, start: datetime) -> dict[str, Any]:
    return row_columns(7, start, make_entry(detail="why"), "a" * 64)


@pytest.mark.parametrize("column", [c for c in HASHED_COLUMNS if c != "recorded"])
def test_changing_any_column_changes_the_hash(
    column: str, columns: dict[str, Any], audit_key: bytes
) -> None:
    changed = {**columns, column: 8 if column == "seq" else f"{columns[column]}x"}
    assert chain_hash(audit_key, changed) != chain_hash(audit_key, columns)


def test_the_time_is_covered_to_the_microsecond(
    columns: dict[str, Any], audit_key: bytes, start: datetime
) -> None:
    later = {**columns, "recorded": start.replace(microsecond=1)}
    assert chain_hash(audit_key, later) != chain_hash(audit_key, columns)


def test_a_missing_value_and_an_empty_one_hash_differently(
    columns: dict[str, Any], audit_key: bytes
) -> None:
    missing = {**columns, "detail": None}
    assert chain_hash(audit_key, {**missing, "detail": ""}) != chain_hash(audit_key, missing)


def test_without_the_key_the_hash_cannot_be_recomputed(
    columns: dict[str, Any], audit_key: bytes
) -> None:
    assert chain_hash(b"another key", columns) != chain_hash(audit_key, columns)


def test_an_entry_with_an_unknown_purpose_or_outcome_is_refused(make_entry: MakeEntry) -> None:
    with pytest.raises(ValueError, match="purpose"):
        make_entry(purpose="curiosity")
    with pytest.raises(ValueError, match="outcome"):
        make_entry(outcome="maybe")
