"""The access log in the database: appending to the chain, and reading it back.

https://profiles.ihe.net/ITI/BALP/ for what a row records. Appends run in the
caller's transaction, so an event is logged exactly when what it records commits.
Readers apply the access decision themselves (health/audit/routes.py, the portal):
the log holds who saw what, never clinical content.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, String, bindparam, func, insert, select, text, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from health.audit.entries import (
    BREAK_GLASS_ACTION,
    GENESIS_HASH,
    AuditEntry,
    AuditRecord,
    chain_hash,
    record_of,
    row_columns,
)
from health.audit.verify import ChainHead, VerifyReport, check_chain
from health.db.tables import audit_head, audit_log
from health.db.write_sql import insert_unless_taken

# The one row of audit_head.
HEAD_ID = 1
# Rows fetched per query while verifying: the log is never held in memory whole.
VERIFY_BATCH = 1000

# The statements of an append, built once: every read request that disclosed
# something appends, and building and keying them anew each time cost more than
# running them on SQLite (docs/BENCHMARKS.md, "Consent and logging").
_HEAD = select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == HEAD_ID)
_LOCK_HEAD = _HEAD.with_for_update()
_INSERT_ROWS = insert(audit_log)
_MOVE_HEAD = (
    update(audit_head)
    .where(audit_head.c.id == HEAD_ID)
    .values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))
)

# PostgreSQL only (swap_append): the rows of an append and the head's move in one
# statement, on the condition that the head is still the one the rows were chained to.
# Each column's values come as one array, so the statement is the same for any number
# of rows. Whether the head moved, and the head as the statement's snapshot saw it.
# Text as TEXT: an explicit cast to VARCHAR(n) would cut a longer value without a word
# (and the row would not match its hash); the insert's own assignment refuses it.
_ROW_ARRAYS = [
    (
        column.name,
        "TEXT" if isinstance(column.type, String) else column.type.compile(postgresql.dialect()),
    )
    for column in audit_log.c
]
_COLUMNS = ", ".join(name for name, _ in _ROW_ARRAYS)
_ARRAYS = ", ".join(f"CAST(:{name} AS {kind}[])" for name, kind in _ROW_ARRAYS)
_SWAP_APPEND = text(
    f"""
    WITH moved AS (
        UPDATE audit_head SET seq = :new_seq, hash = :new_hash
        WHERE id = {HEAD_ID} AND seq = :old_seq AND hash = :old_hash
        RETURNING id
    ), added AS (
        INSERT INTO audit_log ({_COLUMNS})
        SELECT * FROM unnest({_ARRAYS})
        WHERE EXISTS (SELECT FROM moved)
    )
    SELECT EXISTS (SELECT FROM moved) AS moved, seq, hash FROM audit_head WHERE id = {HEAD_ID}
    """
)
# An expected head no head can be: asks swap_append only for the head as it is.
UNKNOWN_HEAD = ChainHead(seq=-1, hash="")

Groups = Sequence[tuple[Sequence[AuditEntry], datetime]]


def rows_after(
    key: bytes, head: ChainHead, groups: Groups
) -> tuple[list[dict[str, Any]], ChainHead]:
    """The rows each group's entries, recorded at the group's time, make after `head`
    in the order given, and the head they leave."""
    seq, previous = head.seq, head.hash
    rows = []
    for entries, now in groups:
        for entry in entries:
            seq += 1
            columns = row_columns(seq, now, entry, previous)
            previous = chain_hash(key, columns)
            rows.append({**columns, "hash": previous})
    return rows, ChainHead(seq=seq, hash=previous)


def swap_append(
    connection: Connection, key: bytes, groups: Groups, expected: ChainHead
) -> tuple[bool, ChainHead | None]:
    """PostgreSQL, on a connection in autocommit: append the groups' rows after
    `expected` and move the head past them, in one statement, if the head is still
    `expected`; else write nothing.

    (True, the new head) when written. Otherwise (False, the head the statement saw,
    None if the log has none yet): chain to that and try again. The head it saw can
    still be `expected` when another writer's move committed while this statement
    waited for the head's row; the next try sees that move.

    One round trip where `AuditLog.append_groups` takes five (BEGIN, the head's lock,
    the insert, the head's update, COMMIT), and the head's row is locked only while
    the statement runs: docs/BENCHMARKS.md, "The access log in one statement".
    """
    rows, after = rows_after(key, expected, groups)
    if not rows:
        return True, expected
    parameters: dict[str, Any] = {name: [row[name] for row in rows] for name, _ in _ROW_ARRAYS}
    parameters.update(
        old_seq=expected.seq, old_hash=expected.hash, new_seq=after.seq, new_hash=after.hash
    )
    found = connection.execute(_SWAP_APPEND, parameters).first()
    if found is None:
        return False, None
    if found.moved:
        return True, after
    return False, ChainHead(seq=int(found.seq), hash=str(found.hash))


class AuditLog:
    """The hash-chained access log, in `session`'s transaction, keyed by the audit key."""

    def __init__(self, session: Session, key: bytes) -> None:
        self._session = session
        self._key = key

    # Writing

    def append(self, entries: Sequence[AuditEntry], now: datetime) -> None:
        """Add `entries` to the end of the chain, recorded at `now`, in this transaction.

        Takes the head row's lock, which every writer of the log waits for until this
        transaction ends: append as late in the transaction as you can. Needs a write
        session (on SQLite, one that began IMMEDIATE).
        """
        self.append_groups([(entries, now)])

    def append_groups(self, groups: Groups) -> ChainHead | None:
        """Add each group's entries, recorded at the group's time, to the end of the
        chain in the order given, in this transaction (as `append`). The head they
        leave (None when there were no entries)."""
        if not any(entries for entries, _ in groups):
            return None
        seq, previous = self._locked_head()
        rows, head = rows_after(self._key, ChainHead(seq=seq, hash=previous), groups)
        self._session.execute(_INSERT_ROWS, rows)
        self._session.execute(_MOVE_HEAD, {"new_seq": head.seq, "new_hash": head.hash})
        return head

    def _locked_head(self) -> tuple[int, str]:
        """The head's seq and hash, its row locked until this transaction ends.

        The row is created on first use. Two first writers on PostgreSQL may both find
        no row: both insert-if-absent (one waits for the other's commit, then inserts
        nothing), then both lock the one row that exists.
        """
        head = self._session.execute(_LOCK_HEAD).first()
        if head is None:
            values = {"id": HEAD_ID, "seq": 0, "hash": GENESIS_HASH}
            self._session.execute(insert_unless_taken(audit_head, values))
            head = self._session.execute(_LOCK_HEAD).one()
        return int(head.seq), str(head.hash)

    # Verifying

    def verify(self, batch: int = VERIFY_BATCH) -> VerifyReport:
        """Every problem in the chain: changed, inserted or deleted rows, a cut tail, a bad head."""
        head = self._session.execute(_HEAD).first()
        return check_chain(
            self._key,
            self._rows_in_order(batch),
            ChainHead(seq=int(head.seq), hash=str(head.hash)) if head else None,
        )

    def _rows_in_order(self, batch: int) -> Iterator[dict[str, Any]]:
        """Every row as its columns, in seq order, `batch` rows per query (keyset)."""
        after: int | None = None
        while True:
            query = select(audit_log).order_by(audit_log.c.seq).limit(batch)
            if after is not None:
                query = query.where(audit_log.c.seq > after)
            rows = [dict(row._mapping) for row in self._session.execute(query)]
            yield from rows
            if len(rows) < batch:
                return
            after = int(rows[-1]["seq"])

    # Reading

    def get(self, seq: int) -> AuditRecord | None:
        """The row with this seq, if there is one."""
        row = self._session.execute(select(audit_log).where(audit_log.c.seq == seq)).first()
        return record_of(row._mapping) if row else None

    def for_patient(
        self,
        patient_id: str,
        *,
        before_seq: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
    ) -> list[AuditRecord]:
        """One citizen's rows, newest first: recorded in [since, until), seq below before_seq."""
        query = self._page(since, until, before_seq).where(audit_log.c.patient_id == patient_id)
        return self._records(query.limit(limit))

    def for_auditor(
        self,
        *,
        before_seq: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
    ) -> list[AuditRecord]:
        """Every citizen's rows, newest first (for auditors only): as for_patient."""
        return self._records(self._page(since, until, before_seq).limit(limit))

    def count(
        self,
        patient_id: str | None = None,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> int:
        """How many rows for_patient (or, without a patient, for_auditor) would page through."""
        query = select(func.count()).select_from(audit_log)
        query = _period(query, since, until)
        if patient_id is not None:
            query = query.where(audit_log.c.patient_id == patient_id)
        return int(self._session.execute(query).scalar_one())

    def break_glass_grants(
        self, since: datetime, until: datetime | None = None
    ) -> list[AuditRecord]:
        """Emergency access grants recorded in [since, until), oldest first."""
        query = _period(select(audit_log), since, until)
        query = query.where(audit_log.c.action == BREAK_GLASS_ACTION).order_by(audit_log.c.seq)
        return self._records(query)

    def disclosures_under(self, grant: AuditRecord) -> int:
        """How many emergency disclosures the grant's clinician made of its patient under it.

        A grant's window runs from the grant to the same clinician's next grant for the
        same patient: emergency is logged only while a grant is in force, so every
        emergency row in between was made under this one.
        """
        entry = grant.entry
        same = (audit_log.c.patient_id == entry.patient_id) & (audit_log.c.agent == entry.agent)
        next_grant = (
            select(func.min(audit_log.c.seq))
            .where(same, audit_log.c.action == BREAK_GLASS_ACTION, audit_log.c.seq > grant.seq)
            .scalar_subquery()
        )
        query = (
            select(func.count())
            .select_from(audit_log)
            .where(
                same,
                audit_log.c.purpose == "emergency",
                audit_log.c.outcome == "success",
                audit_log.c.action != BREAK_GLASS_ACTION,
                audit_log.c.seq > grant.seq,
                (audit_log.c.seq < next_grant) | next_grant.is_(None),
            )
        )
        return int(self._session.execute(query).scalar_one())

    def _page(
        self, since: datetime | None, until: datetime | None, before_seq: int | None
    ) -> Select[Any]:
        query = _period(select(audit_log), since, until).order_by(audit_log.c.seq.desc())
        if before_seq is not None:
            query = query.where(audit_log.c.seq < before_seq)
        return query

    def _records(self, query: Select[Any]) -> list[AuditRecord]:
        return [record_of(row._mapping) for row in self._session.execute(query)]


def _period(query: Select[Any], since: datetime | None, until: datetime | None) -> Select[Any]:
    """`query` confined to rows recorded at or after `since` and before `until`."""
    if since is not None:
        query = query.where(audit_log.c.recorded >= since)
    if until is not None:
        query = query.where(audit_log.c.recorded < until)
    return query
