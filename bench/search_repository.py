"""The database's share of the patient-scoped searches: `Repository.search` in-process.

    .venv/bin/python bench/search_repository.py --database-url URL --facts FILE \
        [--patients 60] [--rounds 3] [--markdown]

bench/search.py measures searches through the server: HTTP, the token, the caller's
scope, the access log and the search together, on a machine whose speed drifts. This
times only what the repository does for the patient-scoped kinds of the mix
(bench/queries.py): parse, confine to the patient, build the statements, run the
page and the count, in one read transaction each, as the system (no caller's scope,
no access log, no includes). So a change to the search SQL can be compared with less
noise around it. Run it against a database bench/search.py loaded: a copy of what its
`--reuse` keeps (`cp DIR/sqlite_<key>.db copy.db`, or on PostgreSQL
`CREATE DATABASE copy TEMPLATE "bench_search_cache_postgresql_<key>"`), with the facts
file `DIR/<database>_<key>.json` beside it. Prints per kind the median, 95th
percentile and mean in ms, over `--rounds` passes over the first `--patients` patients.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path
from urllib.parse import parse_qsl

import orjson
from queries import PatientFacts, QueryMix
from rich.console import Console
from rich.table import Table

from health.db.engine import Database
from health.db.repository import Repository
from health.fhir.config import FhirConfig
from health.fhir.search.params import SearchLimits, parse_search
from health.fhir.search.scope import confine_to_patient
from health.settings import Settings

LIMITS = SearchLimits(default_count=50, max_count=1000)
BASE = "http://bench.invalid/fhir"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--facts", type=Path, required=True, help="the loaded patients' facts")
    parser.add_argument("--patients", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--markdown", action="store_true")
    options = parser.parse_args()

    facts = [PatientFacts.from_json(f) for f in orjson.loads(options.facts.read_bytes())]
    patients = facts[: options.patients]
    mix = QueryMix(patients)
    config = FhirConfig.load(Settings(database_url=options.database_url))
    database = Database(options.database_url)
    rng = random.Random(options.seed)
    timings: dict[str, list[float]] = {}
    try:
        for _ in range(options.rounds):
            for patient in patients:
                one = QueryMix([patient])
                for kind in mix.kinds:
                    if not kind.patient_scoped:
                        continue
                    url = one.fill(kind, rng)
                    resource_type, _, query = url.partition("?")
                    pairs = [(k, v) for k, v in parse_qsl(query) if k != "_include"]
                    started = time.perf_counter()
                    request = parse_search(
                        resource_type, pairs, config.search, base_url=BASE, limits=LIMITS
                    )
                    request = confine_to_patient(request, config.search, config.compartment)
                    with database.session(write=False) as session:
                        Repository.system(session).search(
                            request, limit=request.count, disclose=False
                        )
                    elapsed = (time.perf_counter() - started) * 1000
                    timings.setdefault(kind.name, []).append(elapsed)
    finally:
        database.dispose()
    _print(timings, options.markdown)


def _print(timings: dict[str, list[float]], markdown: bool) -> None:
    rows = []
    for name, times in timings.items():
        ordered = sorted(times)
        p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
        rows.append((name, len(times), statistics.median(ordered), p95, statistics.fmean(ordered)))
    table = Table(title="Repository.search, in-process")
    for column in ("kind", "searches", "p50 ms", "p95 ms", "mean ms"):
        table.add_column(column, justify="left" if column == "kind" else "right")
    for name, count, p50, p95, mean in rows:
        table.add_row(name, f"{count:,}", f"{p50:.2f}", f"{p95:.2f}", f"{mean:.2f}")
    Console().print(table)
    if markdown:
        print("| kind | searches | p50 ms | p95 ms | mean ms |")
        print("|---|---:|---:|---:|---:|")
        for name, count, p50, p95, mean in rows:
            print(f"| {name} | {count:,} | {p50:.2f} | {p95:.2f} | {mean:.2f} |")


if __name__ == "__main__":
    main()
