"""The access log's writer alone: what a read request's logging costs, in-process.

    .venv/bin/python bench/audit_log.py --database sqlite postgresql [--appends 2000] [--markdown]

Every read request that discloses something appends its entries through its worker's
LogWriter (health/audit/writer.py) and is answered only once they are committed. This
times that append with nothing else around it, on a new database (a temporary SQLite
file, or a PostgreSQL database of its own, dropped afterwards), migrated, each entry a
clinician's search of one citizen disclosing two resources:

- **one writer**: one thread appends, one entry at a time; per append, the wall time
  and the CPU time of this process (the server's share; the database's own work is
  not in it);
- **two writers, alternating**: two LogWriters (two worker processes) append in turn,
  so each finds the head moved by the other;
- **K writers at once**: K LogWriters, one thread each, append as fast as they can;
  every append waits for the head's lock, so this is how many appends per second the
  log takes from all of its writers together (group commit would batch requests of
  one worker; here every batch is one request).
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ingest import DEFAULT_POSTGRES, postgres_database, sqlite_database
from search import print_table

from health.audit.entries import AuditEntry
from health.audit.log import AuditLog
from health.audit.writer import LogWriter
from health.db.engine import Database
from health.db.migrate import upgrade_to_head

KEY = b"bench-audit-key-of-at-least-32-characters"
CONCURRENT_WRITERS = (1, 4, 8)


def entry(patient_id: str) -> AuditEntry:
    return AuditEntry(
        action="search",
        outcome="success",
        purpose="treatment",
        agent_kind="clinician",
        agent="Practitioner/bench",
        agent_name="Bench Clinician",
        organization="Organization/bench",
        client_id="bench",
        on_behalf_of=None,
        patient_id=patient_id,
        entities=(f"Observation/{patient_id}-1", f"Observation/{patient_id}-2"),
        detail=None,
    )


@contextmanager
def database_for(kind: str, admin_url: str) -> Iterator[str]:
    if kind == "sqlite":
        with sqlite_database() as (url, _folder):
            yield url
    else:
        with postgres_database(admin_url) as url:
            yield url


def per_append(appends: int, append: Callable[[int], None]) -> tuple[float, float]:
    """Microseconds of wall time and of this process's CPU per append."""
    cpu, wall = time.process_time(), time.perf_counter()
    for number in range(appends):
        append(number)
    return (
        (time.perf_counter() - wall) / appends * 1e6,
        (time.process_time() - cpu) / appends * 1e6,
    )


def concurrent(url: str, writers: int, appends: int) -> float:
    """Appends per second from `writers` LogWriters of their own, one thread each."""
    databases = [Database(url) for _ in range(writers)]
    barrier = threading.Barrier(writers + 1)
    errors: list[BaseException] = []

    def run(writer: LogWriter) -> None:
        try:
            barrier.wait()
            for number in range(appends):
                writer.append([entry(f"c{number}")])
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [
        threading.Thread(target=run, args=(LogWriter(database, KEY),)) for database in databases
    ]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    for database in databases:
        database.dispose()
    if errors:
        raise errors[0]
    return writers * appends / elapsed


def measure(kind: str, admin_url: str, appends: int) -> list[str]:
    with database_for(kind, admin_url) as url:
        database = Database(url)
        upgrade_to_head(database.write_engine)
        other = Database(url)  # a second worker's
        first, second = LogWriter(database, KEY), LogWriter(other, KEY)
        first.append([entry("warm-up")])
        second.append([entry("warm-up")])
        alone = per_append(appends, lambda n: first.append([entry(f"a{n}")]))
        pair = (first, second)
        alternating = per_append(appends, lambda n: pair[n % 2].append([entry(f"b{n}")]))
        rates = [concurrent(url, k, appends // k) for k in CONCURRENT_WRITERS]
        with database.session(write=False) as session:
            report = AuditLog(session, KEY).verify()
        if not report.intact:
            raise SystemExit(f"The chain is broken: {[str(p) for p in report.problems]}")
        database.dispose()
        other.dispose()
    return [
        kind,
        f"{alone[0]:,.0f}",
        f"{alone[1]:,.0f}",
        f"{alternating[0]:,.0f}",
        f"{alternating[1]:,.0f}",
        *(f"{rate:,.0f}" for rate in rates),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", nargs="+", choices=("sqlite", "postgresql"))
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES, help="admin connection URL")
    parser.add_argument("--appends", type=int, default=2000, help="per measurement")
    parser.add_argument("--markdown", action="store_true")
    options = parser.parse_args()

    columns = [
        "database",
        "one writer µs",
        "one writer CPU µs",
        "two alternating µs",
        "two alternating CPU µs",
        *(f"{k} at once, appends/s" for k in CONCURRENT_WRITERS),
    ]
    rows = [measure(kind, options.postgres_url, options.appends) for kind in options.database]
    title = f"Access log appends ({options.appends} per measurement)"
    print_table(title, columns, rows, as_markdown=options.markdown)


if __name__ == "__main__":
    main()
