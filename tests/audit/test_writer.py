"""The access log's writer: concurrent requests' entries committed together, each
request answered only once its entries are in the log, and none of a failed batch."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from health.audit.log import AuditLog
from health.audit.verify import VerifyReport
from health.audit.writer import LogNotWritten, LogWriter
from health.db.engine import Database

# tests/audit/conftest.py: make_entry(patient_id, **changes).
MakeEntry = Any
# How long a test waits for threads to reach a state before it gives up.
PATIENCE_S = 30.0


@pytest.fixture
def writer(database: Database, audit_key: bytes) -> LogWriter:
    return LogWriter(database, audit_key)


def _verify(database: Database, audit_key: bytes) -> VerifyReport:
    with database.session(write=False) as session:
        return AuditLog(session, audit_key).verify()


def _patients_in_order(database: Database, audit_key: bytes) -> list[str | None]:
    with database.session(write=False) as session:
        records = AuditLog(session, audit_key).for_auditor(limit=1000)
    return [record.entry.patient_id for record in sorted(records, key=lambda r: r.seq)]


def _wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + PATIENCE_S
    while not condition():
        assert time.monotonic() < deadline, "the writer's threads did not get there"
        time.sleep(0.005)


class Requests:
    """Threads that each append one request's entries, and what each got."""

    def __init__(self, writer: LogWriter) -> None:
        self._writer = writer
        self.threads: list[threading.Thread] = []
        self.outcomes: dict[str, BaseException | None] = {}

    def start(self, name: str, *entries: Any) -> None:
        def run() -> None:
            try:
                self._writer.append(list(entries))
                self.outcomes[name] = None
            except BaseException as error:  # reported to the test
                self.outcomes[name] = error

        thread = threading.Thread(target=run, name=name)
        self.threads.append(thread)
        thread.start()

    def join(self) -> None:
        for thread in self.threads:
            thread.join(PATIENCE_S)
            assert not thread.is_alive(), f"{thread.name} is still waiting"


@contextmanager
def _log_held(database: Database, audit_key: bytes, make_entry: MakeEntry) -> Iterator[None]:
    """The log's head locked by another transaction (it appends a row of its own) until
    the block ends: a writer that starts now waits for it."""
    with database.session(write=True) as session:
        AuditLog(session, audit_key).append([make_entry("holder")], datetime.now(UTC))
        yield


class Transactions:
    """Which threads sent the write engine a statement, and which committed, while open."""

    def __init__(self) -> None:
        self.talking: set[int] = set()
        self.committed: list[int] = []

    def by_others(self) -> int:
        """Commits of threads other than this one (the test's own transactions)."""
        return len([t for t in self.committed if t != threading.get_ident()])

    def others_talking(self) -> int:
        return len(self.talking - {threading.get_ident()})


@contextmanager
def _transactions(database: Database) -> Iterator[Transactions]:
    seen = Transactions()

    def statement(*_: Any) -> None:
        seen.talking.add(threading.get_ident())

    def commit(_connection: Any) -> None:
        seen.committed.append(threading.get_ident())

    event.listen(database.write_engine, "before_cursor_execute", statement)
    event.listen(database.write_engine, "commit", commit)
    try:
        yield seen
    finally:
        event.remove(database.write_engine, "before_cursor_execute", statement)
        event.remove(database.write_engine, "commit", commit)


@contextmanager
def _inserts_into_the_log_fail(database: Database) -> Iterator[threading.Event]:
    """The database refuses every row the log inserts (a crash, a full disk) while the
    event yielded is set (it starts set)."""
    refusing = threading.Event()
    refusing.set()

    def refuse(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if refusing.is_set() and statement.lstrip().upper().startswith("INSERT INTO AUDIT_LOG"):
            raise OSError("disk I/O error (simulated)")

    event.listen(database.write_engine, "before_cursor_execute", refuse)
    try:
        yield refusing
    finally:
        event.remove(database.write_engine, "before_cursor_execute", refuse)


def test_concurrent_requests_each_get_their_entries_in_one_valid_chain(
    database: Database, writer: LogWriter, make_entry: MakeEntry, audit_key: bytes
) -> None:
    requests = Requests(writer)
    for number in range(16):
        requests.start(f"r{number}", make_entry(f"p{number}"), make_entry(f"p{number}"))
    requests.join()

    assert requests.outcomes == {f"r{number}": None for number in range(16)}
    report = _verify(database, audit_key)
    assert report.intact, [str(p) for p in report.problems]
    assert report.entries == 32
    patients = _patients_in_order(database, audit_key)
    # A request's entries stay together, in its order, whatever batch they were in.
    for number in range(16):
        first = patients.index(f"p{number}")
        assert patients[first : first + 2] == [f"p{number}", f"p{number}"]


def test_requests_that_arrive_during_a_write_are_committed_together_next(
    database: Database, writer: LogWriter, make_entry: MakeEntry, audit_key: bytes
) -> None:
    requests = Requests(writer)
    with _transactions(database) as transactions:
        with _log_held(database, audit_key, make_entry):
            requests.start("first", make_entry("anna"))
            # The first request writes at once (a batch of itself) and waits for the
            # head; the next four queue behind it.
            _wait_until(lambda: transactions.others_talking() == 1)
            for name in ("bo", "carl", "dora", "erik"):
                requests.start(name, make_entry(name))
            _wait_until(lambda: writer.waiting == 4)
        requests.join()
        writers_commits = transactions.by_others()

    assert set(requests.outcomes.values()) == {None}
    assert writers_commits == 2
    patients = _patients_in_order(database, audit_key)
    assert patients[:2] == ["holder", "anna"]
    assert sorted(patients[2:]) == ["bo", "carl", "dora", "erik"]
    assert _verify(database, audit_key).intact


def test_a_failed_batch_fails_every_request_in_it_and_logs_none_of_them(
    database: Database, writer: LogWriter, make_entry: MakeEntry, audit_key: bytes
) -> None:
    requests = Requests(writer)
    with _transactions(database) as transactions, _inserts_into_the_log_fail(database) as refusing:
        refusing.clear()
        with _log_held(database, audit_key, make_entry):
            refusing.set()
            requests.start("first", make_entry("anna"))
            _wait_until(lambda: transactions.others_talking() == 1)
            for name in ("bo", "carl", "dora"):
                requests.start(name, make_entry(name))
            _wait_until(lambda: writer.waiting == 3)
        requests.join()

        assert set(requests.outcomes) == {"first", "bo", "carl", "dora"}
        for name, outcome in requests.outcomes.items():
            assert isinstance(outcome, LogNotWritten), name
        assert _patients_in_order(database, audit_key) == ["holder"]
        # The writer goes on with the next request once the database accepts rows.
        refusing.clear()
        writer.append([make_entry("erik")])

    assert _patients_in_order(database, audit_key) == ["holder", "erik"]
    report = _verify(database, audit_key)
    assert report.intact and report.entries == 2


def test_a_read_whose_entry_cannot_be_logged_is_answered_with_an_error_not_the_data(
    client: TestClient, database: Database
) -> None:
    created = client.post(
        "/fhir/Patient",
        json={"resourceType": "Patient", "name": [{"family": "Hidden-Unlogged"}]},
    )
    assert created.status_code == 201
    patient_id = created.json()["id"]

    with _inserts_into_the_log_fail(database):
        read = client.get(f"/fhir/Patient/{patient_id}")
        searched = client.get("/fhir/Patient?family=Hidden-Unlogged")

    assert read.status_code == 500
    assert searched.status_code == 500
    assert "Hidden-Unlogged" not in read.text + searched.text
    assert client.get(f"/fhir/Patient/{patient_id}").status_code == 200
