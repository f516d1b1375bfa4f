"""Search index extraction of the Synthea resources alone, on one core.

    .venv/bin/python bench/extract.py [--repeat 3]

Extracts the index rows of every entry's resource of the benchmark's patient Bundles
one at a time, as the server does at write time (health/fhir/search/extract.py), with
nothing else: no validation, no HTTP, no database. The figure to watch is the
microseconds per resource, next to validation's (bench/validation.py).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from ingest import DEFAULT_SHARED_DATA
from rich.console import Console
from rich.table import Table
from validation import resources_of

from health import PROJECT_ROOT
from health.fhir.search.definitions import SearchDefinitions
from health.fhir.search.extract import Extractor


def extract_all(extractor: Extractor, resources: list[dict[str, Any]]) -> tuple[float, int]:
    """Seconds to extract every resource once, and the number of rows extracted."""
    rows = 0
    started = time.perf_counter()
    for resource in resources:
        index = extractor.extract(resource)
        rows += len(index.tokens) + len(index.strings) + len(index.dates)
        rows += len(index.references) + len(index.quantities) + len(index.numbers)
        rows += len(index.uris)
    return time.perf_counter() - started, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared-data", type=Path, default=DEFAULT_SHARED_DATA)
    parser.add_argument("--repeat", type=int, default=3)
    arguments = parser.parse_args(argv)
    resources = resources_of(arguments.shared_data)
    started = time.perf_counter()
    extractor = Extractor(SearchDefinitions(PROJECT_ROOT / "fhir"), "http://localhost/fhir")
    compiled = time.perf_counter() - started
    extract_all(extractor, resources[:200])  # warm the caches
    table = Table(title=f"Search index extraction, one core (compiled in {compiled:.2f} s)")
    for column in ("round", "resources", "rows", "seconds", "µs/resource"):
        table.add_column(column, justify="right")
    for round_number in range(1, max(1, arguments.repeat) + 1):
        seconds, rows = extract_all(extractor, resources)
        table.add_row(
            str(round_number),
            f"{len(resources):,}",
            f"{rows:,}",
            f"{seconds:.2f}",
            f"{seconds * 1e6 / len(resources):.1f}",
        )
    Console(width=None if sys.stdout.isatty() else 120).print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
