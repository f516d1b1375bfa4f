"""Parsing a pushed Bundle's body: orjson alone, and the server's parse_json with its
nesting check, over the benchmark's real Synthea Bundles; and the shape check after it.

    .venv/bin/python bench/parse.py [--repeat 5]

Every request body goes through health.fhir.content.parse_json: orjson, then the
check that no container is nested deeper than the settings allow (64 levels). Prints,
best of `--repeat` passes over all Bundles, the milliseconds of orjson, of the check
alone (over the parsed values) and of parse_json, and each per MB of JSON; then of
the shape check that validation runs before the models (health.fhir.json_shape: the
JSON rules, the characters no string may hold), over the parsed Bundles.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from generate import real_bundles
from ingest import DEFAULT_SHARED_DATA
from rich.console import Console
from rich.table import Table

from health import PROJECT_ROOT
from health.fhir.content import _check_depth, parse_json
from health.fhir.json_shape import json_issues
from health.fhir.resource_types import ResourceTypes
from health.settings import Settings


def best_of(repeat: int, inputs: list[Any], step: Callable[[Any], Any]) -> float:
    """Seconds of the fastest pass over every input."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for item in inputs:
            step(item)
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--shared-data", type=Path, default=DEFAULT_SHARED_DATA)
    options = parser.parse_args()

    bodies = [bundle.body for bundle in real_bundles(options.shared_data)]
    megabytes = sum(len(body) for body in bodies) / 1e6
    depth = Settings().max_json_depth
    alone = best_of(options.repeat, bodies, orjson.loads)
    values = [orjson.loads(body) for body in bodies]
    check = best_of(options.repeat, values, lambda value: _check_depth(value, depth))
    checked = best_of(options.repeat, bodies, lambda body: parse_json(body, max_depth=depth))
    types = ResourceTypes(PROJECT_ROOT / "fhir")
    bundle = types.model("Bundle")
    shape = best_of(
        options.repeat, values, lambda value: json_issues(value, bundle, "Bundle", types.model)
    )

    table = Table(title=f"{len(bodies)} Bundles, {megabytes:.1f} MB, best of {options.repeat}")
    for column in ("step", "ms", "ms per MB"):
        table.add_column(column, justify="left" if column == "step" else "right")
    rows = [
        ("orjson.loads", alone),
        (f"the nesting check alone ({depth} levels)", check),
        ("parse_json (both)", checked),
        ("the shape check (json_shape)", shape),
    ]
    for step, seconds in rows:
        table.add_row(step, f"{seconds * 1000:.1f}", f"{seconds * 1000 / megabytes:.2f}")
    Console().print(table)


if __name__ == "__main__":
    main()
