"""The chain check on rows in memory: each kind of damage, and every problem, not the first."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from health.audit.entries import GENESIS_HASH, chain_hash, row_columns
from health.audit.verify import ChainHead, check_chain

MakeEntry = Any  # tests/audit/conftest.py


@pytest.fixture
def chain(make_entry: MakeEntry, audit_key: bytes, start: datetime) -> list[dict[str, Any]]:
    """Six rows chained as AuditLog.append chains them."""
    rows: list[dict[str, Any]] = []
    previous = GENESIS_HASH
    for seq in range(1, 7):
        columns = row_columns(seq, start + timedelta(seconds=seq), make_entry(), previous)
        previous = chain_hash(audit_key, columns)
        rows.append({**columns, "hash": previous})
    return rows


def _head(rows: list[dict[str, Any]]) -> ChainHead:
    return ChainHead(seq=rows[-1]["seq"], hash=rows[-1]["hash"])


def test_an_untouched_chain_is_intact(chain: list[dict[str, Any]], audit_key: bytes) -> None:
    report = check_chain(audit_key, chain, _head(chain))
    assert report.intact
    assert report.entries == 6


def test_an_empty_log_is_intact(audit_key: bytes) -> None:
    assert check_chain(audit_key, [], None).intact
    assert check_chain(audit_key, [], ChainHead(0, GENESIS_HASH)).intact


def test_every_problem_is_reported(chain: list[dict[str, Any]], audit_key: bytes) -> None:
    head = _head(chain)
    chain[1]["agent"] = "Practitioner/someone-else"  # seq 2 changed
    del chain[3]  # seq 4 deleted
    del chain[-1]  # seq 6 cut off
    kinds = [(p.kind, p.seq) for p in check_chain(audit_key, chain, head).problems]
    assert kinds == [("altered", 2), ("missing", 4), ("truncated", 6)]


def test_a_wrong_key_finds_every_row_altered(chain: list[dict[str, Any]]) -> None:
    report = check_chain(b"not the key", chain, _head(chain))
    assert [p.seq for p in report.problems if p.kind == "altered"] == [1, 2, 3, 4, 5, 6]


def test_a_row_with_a_column_of_the_wrong_type_is_altered_not_a_crash(
    chain: list[dict[str, Any]], audit_key: bytes
) -> None:
    chain[2]["recorded"] = "yesterday"
    assert [(p.kind, p.seq) for p in check_chain(audit_key, chain, _head(chain)).problems] == [
        ("altered", 3)
    ]


def test_rows_without_a_head_are_a_problem(chain: list[dict[str, Any]], audit_key: bytes) -> None:
    assert [p.kind for p in check_chain(audit_key, chain, None).problems] == ["head"]
