"""The access log in the database: appending to the chain, and reading it back.

https://profiles.ihe.net/ITI/BALP/ for what a row records. Appends run in the
caller's transaction, so an event is logged exactly when what it records commits.
Readers apply the access decision themselves (health/audit/routes.py, the portal):
the log holds who saw what, never clinical content.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import orjson
import psycopg
from sqlalchemy import Select, String, bindparam, func, insert, select, update
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

# PostgreSQL only (append_pipelined): the head's lock, and then the rows and the head's
# move as one statement. The rows come as one JSON array, read back into typed columns,
# so the statement is the same for any number of rows; one text parameter costs the
# server a fraction of the CPU that one array per column took psycopg to build
# (docs/BENCHMARKS.md, "The access log's rows as one parameter"). Text as TEXT: a cast to
# VARCHAR(n) would cut a longer value without a word (and the row would not match its
# hash); the insert's own assignment refuses it.
_ROW_COLUMNS = [
    (
        column.name,
        "TEXT" if isinstance(column.type, String) else column.type.compile(postgresql.dialect()),
    )
    for column in audit_log.c
]
_PIPELINED_LOCK = f"SELECT seq, hash FROM audit_head WHERE id = {HEAD_ID} FOR UPDATE"
_PIPELINED_APPEND = (
    f"WITH added AS (INSERT INTO audit_log ({', '.join(name for name, _ in _ROW_COLUMNS)}) "
    "SELECT * FROM json_to_recordset(%(rows)s::json) "
    f"AS logged({', '.join(f'{name} {kind}' for name, kind in _ROW_COLUMNS)})) "
    f"UPDATE audit_head SET seq = %(new_seq)s, hash = %(new_hash)s WHERE id = {HEAD_ID}"
)

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


def append_pipelined(connection: psycopg.Connection[Any], key: bytes, groups: Groups) -> bool:
    """PostgreSQL: `AuditLog.append_groups` in a transaction of its own, on a psycopg
    connection in autocommit, in two round trips where the ORM's transaction takes five.

    `BEGIN` and the head's lock go together (psycopg's pipeline mode); once the head is
    known, the rows, the head's move and `COMMIT` go together. False, with nothing
    written, when the log has no head yet (`append_groups` creates it). Any error
    rolls the transaction back before it is raised. docs/BENCHMARKS.md, "The access
    log in two round trips".

    The lock and the append are prepared: parsed and planned once per connection, as
    their plans do not depend on the values (docs/BENCHMARKS.md, "Per-request
    statements prepared").
    """
    # Rolled back only outside the pipeline, by psycopg's rollback(): at a rollback
    # psycopg forgets what it prepared and drops it on the server, at once there, but
    # after a ROLLBACK sent in a pipeline only once the next statement has run, and if
    # that statement was prepared anew the drop takes it too ("prepared statement does
    # not exist" at its next use).
    try:
        with connection.pipeline(), connection.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute(_PIPELINED_LOCK, prepare=True)
            head = cursor.fetchone()
            if head is not None:
                chained = ChainHead(seq=int(head[0]), hash=str(head[1]))
                rows, after = rows_after(key, chained, groups)
                cursor.execute(
                    _PIPELINED_APPEND,
                    {"rows": _json_rows(rows), "new_seq": after.seq, "new_hash": after.hash},
                    prepare=True,
                )
                cursor.execute("COMMIT")
        if head is None:
            connection.rollback()
            return False
    except BaseException:
        if connection.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            with contextlib.suppress(psycopg.Error):  # a lost connection: the pool's to drop
                connection.rollback()
        raise
    return True


def _json_rows(rows: list[dict[str, Any]]) -> str:
    """The rows as the JSON array `_PIPELINED_APPEND` reads: each instant in RFC 3339
    with its offset and every microsecond, which timestamptz takes back exactly (the
    hash covers the instant to the microsecond)."""
    return orjson.dumps(rows).decode()


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

    def append_groups(self, groups: Groups) -> None:
        """Add each group's entries, recorded at the group's time, to the end of the
        chain in the order given, in this transaction (as `append`)."""
        if not any(entries for entries, _ in groups):
            return
        seq, previous = self._locked_head()
        rows, head = rows_after(self._key, ChainHead(seq=seq, hash=previous), groups)
        self._session.execute(_INSERT_ROWS, rows)
        self._session.execute(_MOVE_HEAD, {"new_seq": head.seq, "new_hash": head.hash})

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
