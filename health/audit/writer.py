"""The access log's writer for what requests disclose: the entries of requests that
finish together appended in one transaction (group commit), each request answered
only once its own entries are committed.

A read request logs in a write transaction of its own after its read (health/fhir/
http.py, the portal). One such transaction per request made every logging request of
a process queue for the log's head row (AuditLog.append) and pay a commit of its own:
on PostgreSQL a wait for the WAL flush, on SQLite the database's one write lock,
fought for across worker processes. Here the first request to arrive writes for every
request that arrives while it writes: one head lock, one insert, one commit. A
request never returns before the transaction holding its entries has committed, and
if that transaction fails, every request in it fails (LogNotWritten) and none of its
entries is in the log: a disclosure is answered only once it is logged.

On PostgreSQL that transaction takes two round trips (log.append_pipelined).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from health.audit.entries import AuditEntry
from health.audit.log import AuditLog, Groups, append_pipelined
from health.db.engine import Database


class LogNotWritten(Exception):
    """The transaction that held a request's entries failed: nothing of it was logged."""


@dataclass(eq=False)
class _Waiting:
    """One request's entries, and what became of them."""

    entries: Sequence[AuditEntry]
    recorded: datetime
    # Set when the entries are committed or their transaction failed, or when this
    # request is to write the next batch.
    woken: threading.Event = field(default_factory=threading.Event)
    writes_next: bool = False
    done: bool = False
    error: BaseException | None = None


class LogWriter:
    """Appends requests' entries to the access log of `database`, batched per process."""

    def __init__(self, database: Database, key: bytes) -> None:
        self._database = database
        self._key = key
        self._lock = threading.Lock()
        # Requests that wait for the next batch, in the order they arrived.
        self._queue: list[_Waiting] = []
        # Whether a request is writing a batch (it hands over before it returns).
        self._writing = False

    @property
    def waiting(self) -> int:
        """How many requests wait for the batch after the one being written."""
        with self._lock:
            return len(self._queue)

    def append(self, entries: Sequence[AuditEntry]) -> None:
        """Append `entries`, recorded now, and return once they are committed.

        LogNotWritten if the transaction they were in failed (nothing of it is in the
        log then; the caller must not answer as if it were).
        """
        if not entries:
            return
        waiting = _Waiting(tuple(entries), datetime.now(UTC))
        with self._lock:
            self._queue.append(waiting)
            if not self._writing:
                self._writing = waiting.writes_next = True
        while not waiting.done:
            if waiting.writes_next:
                waiting.writes_next = False
                self._write_batch()
            else:
                waiting.woken.wait()
                waiting.woken.clear()
        if waiting.error is not None:
            raise LogNotWritten(
                f"The access log could not be written ({waiting.error})"
            ) from waiting.error

    def _write_batch(self) -> None:
        """Commit every request queued now in one transaction, wake them, and hand the
        writing on to the first request that queued meanwhile (or end it)."""
        with self._lock:
            batch, self._queue = self._queue, []
        error: BaseException | None = None
        try:
            self._append([(waiting.entries, waiting.recorded) for waiting in batch])
        except BaseException as failure:
            # Whatever it was (a lost connection, a full disk, an interrupt), no
            # request of the batch may answer as logged; the writing is handed on.
            error = failure
            if not isinstance(failure, Exception):
                raise
        finally:
            for waiting in batch:
                waiting.error = error
                waiting.done = True
                waiting.woken.set()
            with self._lock:
                if self._queue:
                    successor = self._queue[0]
                    successor.writes_next = True
                    successor.woken.set()
                else:
                    self._writing = False

    def _append(self, groups: Groups) -> None:
        """Append the groups in one transaction of their own."""
        if not self._database.is_sqlite:
            with self._database.write_engine.connect() as connection:
                connection.execution_options(isolation_level="AUTOCOMMIT")
                if append_pipelined(connection.connection.driver_connection, self._key, groups):
                    return
        with self._database.session(write=True) as session:  # on PostgreSQL: the first row
            AuditLog(session, self._key).append_groups(groups)
