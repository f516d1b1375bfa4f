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


class Batches:
    """The transactions a writer opens for its batches (`LogWriter._append`, on either
    database): how many began, how many entries each held, and, while `refusing` is
    set, a database that refuses them (a crash, a full disk). While `holding` is also
    set, a refused batch takes its time first: it fails once `holding` is cleared."""

    def __init__(self, writer: LogWriter) -> None:
        self.sizes: list[int] = []
        self.refusing = threading.Event()
        self.holding = threading.Event()
        original = writer._append

        def append(groups: Any) -> None:
            self.sizes.append(sum(len(entries) for entries, _ in groups))
            if self.refusing.is_set():
                while self.holding.is_set():
                    time.sleep(0.005)
                raise OSError("disk I/O error (simulated)")
            original(groups)

        writer._append = append  # type: ignore[method-assign]


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
    batches = Batches(writer)
    with _log_held(database, audit_key, make_entry):
        requests.start("first", make_entry("anna"))
        # The first request writes at once (a batch of itself) and waits for the
        # head; the next four queue behind it.
        _wait_until(lambda: len(batches.sizes) == 1)
        for name in ("bo", "carl", "dora", "erik"):
            requests.start(name, make_entry(name))
        _wait_until(lambda: writer.waiting == 4)
    requests.join()

    assert set(requests.outcomes.values()) == {None}
    assert batches.sizes == [1, 4]
    patients = _patients_in_order(database, audit_key)
    assert patients[:2] == ["holder", "anna"]
    assert sorted(patients[2:]) == ["bo", "carl", "dora", "erik"]
    assert _verify(database, audit_key).intact


def test_a_failed_batch_fails_every_request_in_it_and_logs_none_of_them(
    database: Database, writer: LogWriter, make_entry: MakeEntry, audit_key: bytes
) -> None:
    writer.append([make_entry("holder")])
    requests = Requests(writer)
    batches = Batches(writer)
    batches.refusing.set()
    batches.holding.set()
    requests.start("first", make_entry("anna"))
    # The first request's batch is under way; the next three queue behind it.
    _wait_until(lambda: len(batches.sizes) == 1)
    for name in ("bo", "carl", "dora"):
        requests.start(name, make_entry(name))
    _wait_until(lambda: writer.waiting == 3)
    batches.holding.clear()
    requests.join()

    assert set(requests.outcomes) == {"first", "bo", "carl", "dora"}
    for name, outcome in requests.outcomes.items():
        assert isinstance(outcome, LogNotWritten), name
    assert batches.sizes == [1, 3]
    assert _patients_in_order(database, audit_key) == ["holder"]
    # The writer goes on with the next request once the database accepts rows.
    batches.refusing.clear()
    writer.append([make_entry("erik")])

    assert _patients_in_order(database, audit_key) == ["holder", "erik"]
    report = _verify(database, audit_key)
    assert report.intact and report.entries == 2


def test_a_row_the_database_refuses_fails_its_batch_and_moves_no_head(
    database: Database, writer: LogWriter, make_entry: MakeEntry, audit_key: bytes
) -> None:
    if database.is_sqlite:
        pytest.skip("SQLite does not hold text to its column's length")
    writer.append([make_entry("anna")])
    # On PostgreSQL the batch's rows and the head's move are one statement: the row
    # that is too long for its column fails the other rows and the move with it.
    with pytest.raises(LogNotWritten):
        writer.append([make_entry("bo"), make_entry("carl", agent="Practitioner/" + "x" * 300)])

    writer.append([make_entry("dora")])
    assert _patients_in_order(database, audit_key) == ["anna", "dora"]
    report = _verify(database, audit_key)
    assert report.intact and report.entries == report.head_seq == 2


def test_writers_of_several_processes_chain_to_each_others_rows(
    database: Database, make_entry: MakeEntry, audit_key: bytes
) -> None:
    """Each worker process has a LogWriter of its own, and write requests append under
    the head's lock: every writer chains to the rows the others added meanwhile."""
    first, second = LogWriter(database, audit_key), LogWriter(database, audit_key)
    first.append([make_entry("anna")])
    second.append([make_entry("bo"), make_entry("bo")])
    first.append([make_entry("carl")])
    with database.session(write=True) as session:
        AuditLog(session, audit_key).append([make_entry("dora")], datetime.now(UTC))
    second.append([make_entry("erik")])
    first.append([make_entry("frida")])

    assert _patients_in_order(database, audit_key) == [
        "anna",
        "bo",
        "bo",
        "carl",
        "dora",
        "erik",
        "frida",
    ]
    report = _verify(database, audit_key)
    assert report.intact and report.entries == report.head_seq == 7


def test_writers_of_several_processes_at_once_keep_one_gap_free_chain(
    database: Database, make_entry: MakeEntry, audit_key: bytes
) -> None:
    writers = [LogWriter(database, audit_key) for _ in range(3)]
    rounds, per_writer = 10, 3
    barrier = threading.Barrier(len(writers) * per_writer + 1)
    errors: list[BaseException] = []

    def request(writer: LogWriter, name: str) -> None:
        try:
            barrier.wait()
            for _ in range(rounds):
                writer.append([make_entry(name), make_entry(name)])
        except BaseException as error:  # reported on the main thread
            errors.append(error)

    def write_request() -> None:
        try:
            barrier.wait()
            for _ in range(rounds):
                with database.session(write=True) as session:
                    AuditLog(session, audit_key).append([make_entry("w")], datetime.now(UTC))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=write_request)] + [
        threading.Thread(target=request, args=(writer, f"p{w}-{r}"))
        for w, writer in enumerate(writers)
        for r in range(per_writer)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(PATIENCE_S)
    assert errors == []
    report = _verify(database, audit_key)
    assert report.intact, [str(p) for p in report.problems]
    requests = len(writers) * per_writer
    assert report.entries == report.head_seq == rounds * (requests * 2 + 1)
    patients = _patients_in_order(database, audit_key)
    for w in range(len(writers)):
        for r in range(per_writer):
            assert patients.count(f"p{w}-{r}") == rounds * 2


def test_a_read_whose_entry_cannot_be_logged_is_answered_with_an_error_not_the_data(
    client: TestClient, database: Database
) -> None:
    created = client.post(
        "/fhir/Patient",
        json={"resourceType": "Patient", "name": [{"family": "Hidden-Unlogged"}]},
    )
    assert created.status_code == 201
    patient_id = created.json()["id"]

    batches = Batches(client.app.state.log_writer)  # type: ignore[attr-defined]
    batches.refusing.set()
    read = client.get(f"/fhir/Patient/{patient_id}")
    searched = client.get("/fhir/Patient?family=Hidden-Unlogged")
    batches.refusing.clear()

    assert read.status_code == 500
    assert searched.status_code == 500
    assert "Hidden-Unlogged" not in read.text + searched.text
    assert client.get(f"/fhir/Patient/{patient_id}").status_code == 200
