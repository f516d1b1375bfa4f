"""What one access-log row says, and the hash that chains it to the row before.

Pure: no database. `chain_hash` is HMAC-SHA256 under the audit key over a canonical
serialisation of every column, `seq` and `prev_hash` included, so that changing,
inserting or deleting a row breaks either its own hash or the next row's link, and
nobody without the key can compute a replacement.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

Outcome = Literal["success", "refused"]
Purpose = Literal["treatment", "emergency", "self", "proxy", "operations", "audit"]
OUTCOMES: frozenset[str] = frozenset({"success", "refused"})
PURPOSES: frozenset[str] = frozenset(
    {"treatment", "emergency", "self", "proxy", "operations", "audit"}
)
# The `prev_hash` of the first row.
GENESIS_HASH = "0" * 64
# The action under which an emergency access grant is logged: `detail` holds the
# clinician's reason and `entities` the one `Patient/<id>` it was granted for.
BREAK_GLASS_ACTION = "break-glass"
# Every column of audit_log but `hash`, in the order the hash covers them.
HASHED_COLUMNS = (
    "seq",
    "recorded",
    "action",
    "outcome",
    "purpose",
    "agent_kind",
    "agent",
    "agent_name",
    "organization",
    "client_id",
    "on_behalf_of",
    "patient_id",
    "entities",
    "detail",
    "prev_hash",
)
# Bumped if the serialisation below ever changes, so that old rows stay verifiable.
_FORMAT = "audit-v1"


@dataclass(frozen=True)
class AuditEntry:
    """One event to log: who did what to whose record, why, and how it ended."""

    action: str
    outcome: Outcome
    purpose: Purpose
    agent_kind: str
    agent: str | None
    agent_name: str | None
    organization: str | None
    client_id: str | None
    on_behalf_of: str | None
    patient_id: str | None
    entities: tuple[str, ...] = ()
    detail: str | None = None

    def __post_init__(self) -> None:
        # A row with an outcome or purpose nobody reads for would be logged wrong
        # forever: refuse it at the caller, not at the reader.
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome {self.outcome!r} is not one of {sorted(OUTCOMES)}")
        if self.purpose not in PURPOSES:
            raise ValueError(f"purpose {self.purpose!r} is not one of {sorted(PURPOSES)}")


@dataclass(frozen=True)
class AuditRecord:
    """A stored row: the entry, where it sits in the chain, and its hash."""

    seq: int
    recorded: datetime
    entry: AuditEntry
    prev_hash: str
    hash: str


def entities_text(entities: tuple[str, ...]) -> str:
    """The `entities` column as stored: a JSON array of `Type/id`."""
    return orjson.dumps(list(entities)).decode()


def row_columns(seq: int, recorded: datetime, entry: AuditEntry, prev_hash: str) -> dict[str, Any]:
    """The columns of a new row, all but its hash."""
    return {
        "seq": seq,
        "recorded": recorded,
        "action": entry.action,
        "outcome": entry.outcome,
        "purpose": entry.purpose,
        "agent_kind": entry.agent_kind,
        "agent": entry.agent,
        "agent_name": entry.agent_name,
        "organization": entry.organization,
        "client_id": entry.client_id,
        "on_behalf_of": entry.on_behalf_of,
        "patient_id": entry.patient_id,
        "entities": entities_text(entry.entities),
        "detail": entry.detail,
        "prev_hash": prev_hash,
    }


def canonical(columns: Mapping[str, Any]) -> bytes:
    """The bytes a row's hash covers: every column but the hash, in a fixed order.

    Taken from the columns as stored (the `entities` JSON text as it is), so that
    verification hashes exactly what the database holds.
    """
    recorded: datetime = columns["recorded"]
    # The instant to the microsecond in UTC: what both databases store and give back.
    moment = recorded.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    values = [columns[name] for name in HASHED_COLUMNS]
    return orjson.dumps([_FORMAT, values[0], moment, *values[2:]])


def chain_hash(key: bytes, columns: Mapping[str, Any]) -> str:
    """The row's hash: HMAC-SHA256 under the audit key over `canonical(columns)`, in hex."""
    return hmac.new(key, canonical(columns), hashlib.sha256).hexdigest()


def record_of(columns: Mapping[str, Any]) -> AuditRecord:
    """A stored row as a record; ValueError when a column holds what no writer wrote."""
    entities = orjson.loads(columns["entities"])
    if not isinstance(entities, list) or not all(isinstance(e, str) for e in entities):
        raise ValueError("entities is not a JSON array of strings")
    entry = AuditEntry(
        action=columns["action"],
        outcome=columns["outcome"],
        purpose=columns["purpose"],
        agent_kind=columns["agent_kind"],
        agent=columns["agent"],
        agent_name=columns["agent_name"],
        organization=columns["organization"],
        client_id=columns["client_id"],
        on_behalf_of=columns["on_behalf_of"],
        patient_id=columns["patient_id"],
        entities=tuple(entities),
        detail=columns["detail"],
    )
    return AuditRecord(
        seq=int(columns["seq"]),
        recorded=columns["recorded"],
        entry=entry,
        prev_hash=columns["prev_hash"],
        hash=columns["hash"],
    )
