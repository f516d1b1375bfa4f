"""The access log in the database: appends chain gap-free, verify finds tampering done
directly in the database, and the read helpers page newest first."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
from sqlalchemy import text

from health.audit.entries import GENESIS_HASH
from health.audit.log import AuditLog, append_pipelined
from health.audit.verify import VerifyReport
from health.db.engine import Database

# tests/audit/conftest.py: append(*entries, at=...), make_entry(patient_id, **changes).
AppendRows = Any
MakeEntry = Any


def _verify(database: Database, audit_key: bytes, batch: int = 1000) -> VerifyReport:
    with database.session(write=False) as session:
        return AuditLog(session, audit_key).verify(batch=batch)


def _tamper(database: Database, statement: str, **values: Any) -> None:
    """Change the tables as someone with database access would, outside the log's code."""
    with database.write_engine.begin() as connection:
        connection.execute(text(statement), values)


def _kinds(report: VerifyReport) -> list[tuple[str, int | None]]:
    return [(problem.kind, problem.seq) for problem in report.problems]


def test_appends_chain_from_genesis_without_gaps(
    database: Database, append: AppendRows, make_entry: MakeEntry, audit_key: bytes
) -> None:
    append(make_entry("anna"), make_entry("bo"))
    append(make_entry("carl"))
    with database.session(write=False) as session:
        log = AuditLog(session, audit_key)
        records = sorted(log.for_auditor(), key=lambda r: r.seq)
    assert [r.seq for r in records] == [1, 2, 3]
    assert records[0].prev_hash == GENESIS_HASH
    assert [r.prev_hash for r in records[1:]] == [r.hash for r in records[:-1]]
    report = _verify(database, audit_key)
    assert report.intact and report.entries == 3 and report.head_seq == 3


def test_an_empty_append_writes_nothing(
    database: Database, append: AppendRows, audit_key: bytes
) -> None:
    append()
    assert _verify(database, audit_key).entries == 0


def test_the_pipelined_append_plans_its_statements_once_per_connection(
    database: Database, append: AppendRows, make_entry: MakeEntry, audit_key: bytes, start: datetime
) -> None:
    if database.is_sqlite:
        pytest.skip("PostgreSQL's pipelined append")
    append(make_entry("anna"))  # the head's row, which the pipelined append needs
    runs = "SELECT statement, generic_plans + custom_plans FROM pg_prepared_statements"
    with database.write_engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT")
        driver = connection.connection.driver_connection
        assert driver is not None
        before = dict(driver.execute(runs).fetchall())
        for name in ("bo", "carl"):
            assert append_pipelined(driver, audit_key, [([make_entry(name)], start)])
        after = dict(driver.execute(runs).fetchall())
    grown = {
        statement: n - before.get(statement, 0)
        for statement, n in after.items()
        if n > before.get(statement, 0)
    }
    assert sorted((statement.split()[0], n) for statement, n in grown.items()) == [
        ("SELECT", 2),
        ("WITH", 2),
    ]
    report = _verify(database, audit_key)
    assert report.intact and report.entries == report.head_seq == 3


def test_a_pipelined_append_before_the_head_exists_leaves_prepared_statements_working(
    database: Database, make_entry: MakeEntry, audit_key: bytes, start: datetime
) -> None:
    """The first append finds no head and rolls back. psycopg then forgets what it had
    prepared, and must also have dropped it on the server before it prepares again:
    otherwise the next statement it prepares is dropped behind its back."""
    if database.is_sqlite:
        pytest.skip("PostgreSQL's pipelined append")
    with database.write_engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT")
        driver = connection.connection.driver_connection
        assert driver is not None
        assert not append_pipelined(driver, audit_key, [([make_entry("anna")], start)])
        for _ in range(2):
            assert driver.execute("SELECT count(*) FROM audit_log", prepare=True).fetchone() == (0,)


def _pipelined(database: Database, audit_key: bytes, groups: Any) -> bool:
    with database.write_engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT")
        driver = connection.connection.driver_connection
        assert driver is not None
        return append_pipelined(driver, audit_key, groups)


def test_the_pipelined_append_stores_every_value_as_given(
    database: Database, append: AppendRows, make_entry: MakeEntry, audit_key: bytes, start: datetime
) -> None:
    """The rows travel as one JSON text and are read back into typed columns: what
    comes out, and what the hashes cover, must be exactly what went in."""
    if database.is_sqlite:
        pytest.skip("PostgreSQL's pipelined append")
    append(make_entry("anna"))
    awkward = 'Ærø "quoted" \\ back\nslash\t\u00e9 \U0001f600 {"json": [1]} \u2028'
    entries = [
        make_entry("bo", detail=awkward, entities=("Observation/a", "Condition/b-1")),
        make_entry("carl", agent=None, detail=None, entities=()),
    ]
    at_micro = start.replace(microsecond=123456)
    # Another offset, and an instant without microseconds (orjson then writes none).
    elsewhere = (start + timedelta(minutes=1)).astimezone(timezone(timedelta(hours=2)))
    assert _pipelined(database, audit_key, [(entries, at_micro), ([make_entry("dan")], elsewhere)])
    with database.session(write=False) as session:
        records = sorted(AuditLog(session, audit_key).for_auditor(), key=lambda r: r.seq)
    assert [r.entry for r in records[1:]] == [*entries, make_entry("dan")]
    assert [r.recorded for r in records[1:]] == [at_micro, at_micro, elsewhere]
    report = _verify(database, audit_key)
    assert report.intact and report.entries == report.head_seq == 4


def test_a_pipelined_append_of_a_value_too_long_writes_nothing(
    database: Database, append: AppendRows, make_entry: MakeEntry, audit_key: bytes, start: datetime
) -> None:
    if database.is_sqlite:
        pytest.skip("PostgreSQL's pipelined append")
    append(make_entry("anna"))
    groups = [([make_entry("bo"), make_entry("carl", action="x" * 33)], start)]
    with pytest.raises(psycopg.errors.StringDataRightTruncation):
        _pipelined(database, audit_key, groups)
    report = _verify(database, audit_key)
    assert report.intact and report.entries == report.head_seq == 1
    assert _pipelined(database, audit_key, [([make_entry("dan")], start)])
    assert _verify(database, audit_key).entries == 2


def test_verify_reads_in_batches_and_finds_the_same(
    database: Database, log_rows: None, audit_key: bytes
) -> None:
    _tamper(database, "UPDATE audit_log SET detail = 'x' WHERE seq = 3")
    assert _kinds(_verify(database, audit_key, batch=2)) == _kinds(_verify(database, audit_key))
    assert _kinds(_verify(database, audit_key, batch=2)) == [("altered", 3)]


def test_a_changed_row_is_found(database: Database, log_rows: None, audit_key: bytes) -> None:
    _tamper(database, "UPDATE audit_log SET agent = 'Practitioner/nobody' WHERE seq = 2")
    assert _kinds(_verify(database, audit_key)) == [("altered", 2)]


def test_a_changed_row_with_its_hash_replaced_is_found(
    database: Database, log_rows: None, audit_key: bytes
) -> None:
    # Without the key, a new hash cannot be right; and the next row no longer links.
    _tamper(
        database,
        "UPDATE audit_log SET patient_id = 'bo', hash = :forged WHERE seq = 3",
        forged="f" * 64,
    )
    assert _kinds(_verify(database, audit_key)) == [("altered", 3), ("unlinked", 4)]


def test_a_deleted_row_is_found(database: Database, log_rows: None, audit_key: bytes) -> None:
    _tamper(database, "DELETE FROM audit_log WHERE seq = 2")
    assert _kinds(_verify(database, audit_key)) == [("missing", 2)]


def test_a_deleted_first_row_is_found(database: Database, log_rows: None, audit_key: bytes) -> None:
    _tamper(database, "DELETE FROM audit_log WHERE seq = 1")
    assert _kinds(_verify(database, audit_key)) == [("missing", 1)]


def test_a_deleted_last_row_is_found(database: Database, log_rows: None, audit_key: bytes) -> None:
    _tamper(database, "DELETE FROM audit_log WHERE seq = 5")
    assert _kinds(_verify(database, audit_key)) == [("truncated", 5)]


def _copy_row(database: Database, seq: int, new_seq: int, **changes: str) -> None:
    """Insert a forged row: a copy of row `seq` at `new_seq`, with `changes`."""
    columns = (
        "recorded, action, outcome, purpose, agent_kind, agent, agent_name, organization, "
        "client_id, on_behalf_of, patient_id, entities, detail, prev_hash, hash"
    )
    chosen = ", ".join(f":{name}" if name in changes else name for name in columns.split(", "))
    _tamper(
        database,
        f"INSERT INTO audit_log (seq, {columns}) "
        f"SELECT :new_seq, {chosen} FROM audit_log WHERE seq = :seq",
        seq=seq,
        new_seq=new_seq,
        **changes,
    )


def test_a_row_inserted_in_place_of_a_deleted_one_is_found(
    database: Database, log_rows: None, audit_key: bytes
) -> None:
    # Replace row 3 by one that says the look was at someone else's record.
    _tamper(database, "DELETE FROM audit_log WHERE seq = 3")
    _copy_row(database, 2, 3, patient_id="carl")
    assert _kinds(_verify(database, audit_key)) == [
        ("unlinked", 3),
        ("altered", 3),
        ("unlinked", 4),
    ]


def test_a_row_appended_behind_the_logs_back_is_found(
    database: Database, log_rows: None, audit_key: bytes
) -> None:
    _copy_row(database, 5, 6, patient_id="carl")
    assert _kinds(_verify(database, audit_key)) == [
        ("unlinked", 6),
        ("altered", 6),
        ("beyond-head", 6),
    ]


def test_a_head_that_does_not_match_is_found(
    database: Database, log_rows: None, audit_key: bytes
) -> None:
    _tamper(database, "UPDATE audit_head SET hash = :other", other="0" * 64)
    assert _kinds(_verify(database, audit_key)) == [("head", None)]


def test_concurrent_writers_keep_one_gap_free_valid_chain(
    database: Database, make_entry: MakeEntry, audit_key: bytes, start: datetime
) -> None:
    # Eight writers start at once on an empty log (no head row yet): they race to
    # create the head, then queue on its lock.
    writers, appends = 8, 5
    barrier = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write(number: int) -> None:
        try:
            barrier.wait()
            for _ in range(appends):
                with database.session(write=True) as session:
                    entries = [make_entry(f"p{number}"), make_entry(f"p{number}")]
                    AuditLog(session, audit_key).append(entries, start)
        except BaseException as error:  # reported on the main thread
            errors.append(error)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    report = _verify(database, audit_key)
    assert report.intact, [str(p) for p in report.problems]
    assert report.entries == report.head_seq == writers * appends * 2
    with database.session(write=False) as session:
        log = AuditLog(session, audit_key)
        for number in range(writers):
            assert log.count(f"p{number}") == appends * 2


# Reading


def test_a_patients_rows_come_newest_first_in_pages(
    database: Database, log_rows: None, audit_key: bytes
) -> None:
    with database.session(write=False) as session:
        log = AuditLog(session, audit_key)
        first = log.for_patient("anna", limit=2)
        second = log.for_patient("anna", before_seq=first[-1].seq, limit=2)
        assert [r.seq for r in first] == [5, 3]
        assert [r.seq for r in second] == [1]
        assert log.count("anna") == 3
        assert log.for_patient("nobody") == []


def test_a_period_confines_the_rows(
    database: Database, log_rows: None, audit_key: bytes, start: datetime
) -> None:
    with database.session(write=False) as session:
        log = AuditLog(session, audit_key)
        period = {"since": start + timedelta(minutes=1), "until": start + timedelta(minutes=4)}
        assert [r.seq for r in log.for_patient("anna", **period)] == [3]
        assert [r.seq for r in log.for_auditor(**period)] == [4, 3, 2]
        assert log.count(**period) == 3


def test_a_row_reads_back_as_it_was_appended(
    database: Database, append: AppendRows, make_entry: MakeEntry, audit_key: bytes
) -> None:
    entry = make_entry("anna", entities=("Observation/1", "Condition/2"), detail="why")
    append(entry)
    with database.session(write=False) as session:
        record = AuditLog(session, audit_key).get(1)
        assert AuditLog(session, audit_key).get(2) is None
    assert record is not None
    assert record.entry == entry


def test_break_glass_grants_and_the_disclosures_under_each(
    database: Database, append: AppendRows, make_entry: MakeEntry, audit_key: bytes, start: datetime
) -> None:
    def grant(patient: str, agent: str = "Practitioner/bo") -> Any:
        return make_entry(
            patient,
            agent=agent,
            action="break-glass",
            purpose="emergency",
            entities=(f"Patient/{patient}",),
            detail="unconscious in the ER",
        )

    def emergency(patient: str, agent: str = "Practitioner/bo", **changes: Any) -> Any:
        return make_entry(patient, agent=agent, purpose="emergency", **changes)

    append(grant("anna"), at=start - timedelta(days=2))  # before the period
    append(emergency("anna"), at=start - timedelta(days=2))
    append(grant("anna"), at=start)
    append(emergency("anna"), emergency("anna"), make_entry("anna"), at=start)
    append(emergency("anna", outcome="refused"), at=start)  # not a disclosure
    append(emergency("anna", agent="Practitioner/eva"), at=start)  # someone else's
    append(grant("carl"), emergency("carl"), at=start + timedelta(hours=1))
    append(grant("anna"), emergency("anna"), at=start + timedelta(days=3))  # a later grant
    with database.session(write=False) as session:
        log = AuditLog(session, audit_key)
        grants = log.break_glass_grants(start, start + timedelta(days=1))
        assert [(g.entry.patient_id, log.disclosures_under(g)) for g in grants] == [
            ("anna", 2),
            ("carl", 1),
        ]
        assert len(log.break_glass_grants(start)) == 3
        assert grants[0].entry.detail == "unconscious in the ER"


@pytest.mark.parametrize("batch", [1, 3])
def test_verify_of_a_longer_log_in_small_batches(
    database: Database, append: AppendRows, make_entry: MakeEntry, audit_key: bytes, batch: int
) -> None:
    append(*[make_entry(f"p{n}") for n in range(7)])
    report = _verify(database, audit_key, batch=batch)
    assert report.intact and report.entries == 7
