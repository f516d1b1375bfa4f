"""Checking the chain: every changed, inserted or deleted row, and the head.

Pure: it walks rows (as their stored columns) in seq order, once, holding only the
previous row, so a log of any size is checked in constant memory.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from health.audit.entries import GENESIS_HASH, chain_hash

ProblemKind = Literal["altered", "unlinked", "missing", "truncated", "beyond-head", "head"]


@dataclass(frozen=True)
class ChainHead:
    """What audit_head says: the last row's seq and hash."""

    seq: int
    hash: str


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the chain, at `seq` (None: the head itself)."""

    kind: ProblemKind
    seq: int | None
    message: str

    def __str__(self) -> str:
        where = f"seq {self.seq}" if self.seq is not None else "head"
        return f"{where}: {self.message}"


@dataclass
class VerifyReport:
    """What verification found: how many rows it read, and every problem."""

    entries: int = 0
    head_seq: int | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems


def check_chain(
    key: bytes, rows: Iterable[Mapping[str, Any]], head: ChainHead | None
) -> VerifyReport:
    """Every problem in `rows` (the stored columns, in seq order) against `head`."""
    report = VerifyReport(head_seq=head.seq if head else None)
    problems = report.problems
    last_seq = 0
    last_hash = GENESIS_HASH
    for row in rows:
        report.entries += 1
        seq = int(row["seq"])
        if seq > last_seq + 1:
            # Rows were deleted: the link from the first row after the gap cannot be
            # checked (its predecessor is gone), so the gap is the one problem here.
            first, last = last_seq + 1, seq - 1
            span = f"seq {first}" if first == last else f"seq {first} to {last}"
            problems.append(Problem("missing", first, f"{span} missing (rows deleted)"))
        elif not hmac.compare_digest(str(row["prev_hash"]), last_hash):
            problems.append(
                Problem(
                    "unlinked",
                    seq,
                    "does not link to the row before it (a row was inserted, replaced "
                    "or deleted before this one)",
                )
            )
        if not _hash_holds(key, row):
            problems.append(
                Problem("altered", seq, "its hash does not match its content (changed or forged)")
            )
        if head is not None and seq > head.seq:
            problems.append(
                Problem(
                    "beyond-head",
                    seq,
                    f"lies beyond the head (seq {head.seq}): appended outside the log",
                )
            )
        last_seq, last_hash = seq, str(row["hash"])
    if head is None:
        if report.entries:
            problems.append(Problem("head", None, "the head row is missing"))
        return report
    if head.seq > last_seq:
        first = last_seq + 1
        span = f"seq {first}" if first == head.seq else f"seq {first} to {head.seq}"
        problems.append(
            Problem("truncated", first, f"{span} missing at the end (the head says {head.seq})")
        )
    elif head.seq == last_seq and not hmac.compare_digest(head.hash, last_hash):
        problems.append(
            Problem("head", None, f"the head's hash does not match the row at seq {head.seq}")
        )
    return report


def _hash_holds(key: bytes, row: Mapping[str, Any]) -> bool:
    try:
        expected = chain_hash(key, row)
    except (TypeError, ValueError, AttributeError):
        # A column of a type no writer stores (a number where text was): tampered.
        return False
    return hmac.compare_digest(expected, str(row["hash"]))
