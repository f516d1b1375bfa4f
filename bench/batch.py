"""Batch Bundles through the push path, in-process, as `health import` loads them: the
2021 provider directory, and the 2021 patients as a bulk data export (NDJSON).

    .venv/bin/python bench/batch.py --database sqlite postgresql [--markdown]

For each database: a new database (a temporary SQLite file, or a PostgreSQL database
of its own, dropped afterwards), migrated, with two source Organizations. Each source
in turn imports:

- the 2021 Synthea provider files (batch Bundles: 4,764 entries, each Organization,
  Location and Practitioner with `ifNoneExist` on its identifier, and 1,191
  PractitionerRoles). The first source creates the directory; the second's directory
  entries all find what the first created;
- the 2021 patients' transaction Bundles rewritten as a bulk data export: one NDJSON
  file per type, each resource under its own id, references between them as
  `Type/id` (written to a temporary folder; the importer pushes 500 lines per batch).
  The second source's Patients merge into the citizens the first created.

Each import is one call of the importer (health.ingest.bulk.Importer: the push path,
person matching, directory deduplication and Provenance, with no HTTP). Printed per
phase: seconds, entries/s and SQL statements per entry. bench/ingest.py measures the
same directory over HTTP, as the first thing its server loads.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from generate import patient_files_2021, provider_files
from ingest import DEFAULT_POSTGRES, DEFAULT_SHARED_DATA, postgres_database, sqlite_database
from rich.console import Console
from rich.table import Table
from sqlalchemy import event
from sqlalchemy.engine import Engine

from health.db.engine import Database
from health.db.migrate import upgrade_to_head
from health.db.repository import Repository
from health.fhir.config import FhirConfig
from health.fhir.interactions import Interactions
from health.fhir.validation import check
from health.ingest.bulk import Importer, find_files, find_source
from health.settings import Settings

SOURCE_SYSTEM = "urn:oid:1.2.208.176.1.1"
SOURCES = (("4000", "Hvidovre Hospital"), ("5000", "Aarhus Universitetshospital"))
_URN_UUID = re.compile(rb'"urn:uuid:([0-9a-f-]{36})"')


@dataclass(frozen=True)
class Phase:
    database: str
    source: str
    files: str
    entries: int
    seconds: float
    statements: int
    refused: int

    @property
    def entries_per_s(self) -> float:
        return self.entries / self.seconds

    def row(self) -> list[str]:
        return [
            self.database,
            self.source,
            self.files,
            f"{self.entries:,}",
            f"{self.seconds:.1f}",
            f"{self.entries_per_s:,.0f}",
            f"{self.statements / self.entries:.2f}",
            str(self.refused),
        ]


HEADERS = [
    "database",
    "source",
    "files",
    "entries",
    "seconds",
    "entries/s",
    "statements/entry",
    "refused",
]


@contextmanager
def counting(engines: list[Engine]) -> Iterator[list[int]]:
    """The number of statements `engines` execute inside the block, in a list of one."""
    count = [0]

    def note(*_: Any) -> None:
        count[0] += 1

    for engine in engines:
        event.listen(engine, "before_cursor_execute", note)
    try:
        yield count
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", note)


def register_sources(database: Database, config: FhirConfig) -> None:
    with database.session(write=True) as session:
        interactions = Interactions(Repository.system(session), config)
        for value, name in SOURCES:
            organization = {
                "resourceType": "Organization",
                "identifier": [{"system": SOURCE_SYSTEM, "value": value}],
                "name": name,
            }
            interactions.create(check(organization, "Organization", config.types))
        interactions.flush()


def bulk_export(bundles: list[Path], folder: Path) -> list[Path]:
    """The Bundles' resources as a bulk data export in `folder`: one NDJSON file per
    type, each resource under its own id, references to one another as `Type/id`
    (https://hl7.org/fhir/uv/bulkdata/export.html), in the order an import takes them."""
    lines: dict[str, list[bytes]] = {}
    for path in bundles:
        body = path.read_bytes()
        types = {
            entry["fullUrl"].removeprefix("urn:uuid:").encode(): entry["resource"][
                "resourceType"
            ].encode()
            for entry in orjson.loads(body)["entry"]
            if entry.get("fullUrl", "").startswith("urn:uuid:")
        }

        def literal(match: re.Match[bytes], types: dict[bytes, bytes] = types) -> bytes:
            uuid = match.group(1)
            return b'"%s/%s"' % (types[uuid], uuid) if uuid in types else match.group(0)

        for entry in orjson.loads(_URN_UUID.sub(literal, body))["entry"]:
            resource = entry["resource"]
            lines.setdefault(resource["resourceType"], []).append(orjson.dumps(resource))
    for resource_type, rows in lines.items():
        (folder / f"{resource_type}.ndjson").write_bytes(b"\n".join(rows) + b"\n")
    return find_files([folder])


def entries_in(files: list[Path]) -> int:
    if files[0].suffix == ".ndjson":
        return sum(len(path.read_bytes().splitlines()) for path in files)
    return sum(len(orjson.loads(path.read_bytes())["entry"]) for path in files)


def run(database_name: str, url: str, inputs: dict[str, list[Path]]) -> list[Phase]:
    settings = Settings(database_url=url)
    config = FhirConfig.load(settings)
    database = Database(url)
    try:
        upgrade_to_head(database.write_engine)
        register_sources(database, config)
        phases = []
        for number, (value, _name) in enumerate(SOURCES):
            actor = find_source(database, config, f"{SOURCE_SYSTEM}|{value}")
            for files_name, files in inputs.items():
                engines = [database.write_engine, database.read_engine]
                with counting(engines) as statements:
                    started = time.perf_counter()
                    summary = Importer(database, config, actor).run(files)
                    seconds = time.perf_counter() - started
                phases.append(
                    Phase(
                        database_name,
                        "first" if number == 0 else "second",
                        files_name,
                        entries_in(files),
                        seconds,
                        statements[0],
                        len(summary.rejected),
                    )
                )
        return phases
    finally:
        database.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database", nargs="+", choices=["sqlite", "postgresql"], default=["sqlite"]
    )
    parser.add_argument("--shared-data", type=Path, default=DEFAULT_SHARED_DATA)
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES, help="admin connection URL")
    parser.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    options = parser.parse_args()

    directory = provider_files(options.shared_data)
    patients = patient_files_2021(options.shared_data)
    if not directory or not patients:
        raise SystemExit(f"No 2021 Synthea files under {options.shared_data}")
    phases: list[Phase] = []
    with tempfile.TemporaryDirectory(prefix="health-bench-ndjson-") as export:
        inputs = {
            "provider directory": directory,
            "patients as NDJSON": bulk_export(patients, Path(export)),
        }
        for database_name in options.database:
            if database_name == "sqlite":
                with sqlite_database() as (url, _folder):
                    phases += run(database_name, url, inputs)
            else:
                with postgres_database(options.postgres_url) as url:
                    phases += run(database_name, url, inputs)

    table = Table(*HEADERS, title="Imported as batch Bundles (health import)")
    for phase in phases:
        table.add_row(*phase.row())
    console = Console(width=None if sys.stdout.isatty() else 120)
    console.print(table)
    if options.markdown:
        console.print("| " + " | ".join(HEADERS) + " |")
        console.print("|" + "---|" * len(HEADERS))
        for phase in phases:
            console.print("| " + " | ".join(phase.row()) + " |")


if __name__ == "__main__":
    main()
