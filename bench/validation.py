"""The ceiling for one core: fhir.resources (R4B) validation of the Synthea resources alone.

    .venv/bin/python bench/validation.py [--repeat 3]

Validates every entry's resource of the benchmark's patient Bundles one at a time, as
the server does (health/fhir/validation.py), with nothing else: no HTTP, no JSON
parsing, no database. The server's ingest rate on one core cannot pass this figure.
The models are the server's (health.fhir.resource_types), with the faster equivalents
of two of fhir_core's validators installed (health/fhir/model_validators.py).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from generate import real_bundles
from ingest import DEFAULT_SHARED_DATA
from rich.console import Console
from rich.table import Table

from health.fhir.resource_types import model_class


def resources_of(shared_data: Path) -> list[dict[str, Any]]:
    return [
        entry["resource"]
        for bundle in real_bundles(shared_data)
        for entry in orjson.loads(bundle.body).get("entry", [])
        if isinstance(entry.get("resource"), dict)
    ]


def validate_all(resources: list[dict[str, Any]]) -> float:
    """Seconds to validate every resource once."""
    started = time.perf_counter()
    for resource in resources:
        model_class(resource["resourceType"]).model_validate(resource)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared-data", type=Path, default=DEFAULT_SHARED_DATA)
    parser.add_argument("--repeat", type=int, default=3)
    arguments = parser.parse_args(argv)
    resources = resources_of(arguments.shared_data)
    validate_all(resources[:200])  # warm the model classes and their validators
    table = Table(title="fhir.resources R4B validation, one core")
    for column in ("round", "resources", "seconds", "resources/s"):
        table.add_column(column, justify="right")
    for round_number in range(1, max(1, arguments.repeat) + 1):
        seconds = validate_all(resources)
        table.add_row(
            str(round_number),
            f"{len(resources):,}",
            f"{seconds:.2f}",
            f"{len(resources) / seconds:,.0f}",
        )
    Console(width=None if sys.stdout.isatty() else 120).print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
