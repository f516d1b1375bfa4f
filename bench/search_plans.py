"""PostgreSQL's planning and execution time for the patient-scoped searches' statements.

    .venv/bin/python bench/search_plans.py capture --database-url URL --facts FILE OUT
    .venv/bin/python bench/search_plans.py compare --database-url URL BEFORE AFTER [--rounds 10]

On PostgreSQL a patient search's statements are planned at every execution (psycopg
never prepares them: health/db/engine.py), and planning took longer than running them
(docs/BENCHMARKS.md, "Per-request statements prepared"). `capture` runs the
patient-scoped kinds of the mix (bench/queries.py) through `Repository.search` and its
includes, in-process, as the benchmark's backend client (the Organization that
recorded the loaded records, so with a source's scope), and saves every statement
with its parameters as the code of this tree builds them. `compare` runs two captures'
statements under `EXPLAIN (ANALYZE, SUMMARY)`, alternating one search of each, and
prints per kind the median planning and execution time of a search's statements: two
trees compared on one database at the same moments, which a machine whose speed drifts
allows where a throughput run does not. Run it against a database bench/search.py
loaded (see bench/search_repository.py for making a copy) with its facts file.
"""

from __future__ import annotations

import argparse
import pickle
import random
import re
import statistics
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import orjson
import psycopg
from queries import PatientFacts, QueryMix
from search import print_table
from sqlalchemy import event, make_url, text

from health.access.actor import Actor, ActorKind
from health.auth.scopes import Scopes
from health.db.engine import Database
from health.db.repository import Repository
from health.fhir.config import FhirConfig
from health.fhir.search.params import SearchLimits, parse_search
from health.fhir.search.scope import confine_to_patient
from health.settings import Settings

LIMITS = SearchLimits(default_count=50, max_count=1000)
BASE = "http://bench.invalid/fhir"
# One search's statements: (SQL as psycopg receives it, its parameters).
Statements = list[tuple[str, Any]]
Capture = dict[str, list[Statements]]


def capture(url: str, facts_file: Path, patients: int, seed: int) -> Capture:
    """Every statement of each patient-scoped search, per kind, in the mix's order."""
    facts = [PatientFacts.from_json(f) for f in orjson.loads(facts_file.read_bytes())]
    config = FhirConfig.load(Settings(database_url=url))
    database = Database(url)
    executed: Statements = []

    @event.listens_for(database.read_engine, "before_cursor_execute")
    def _note(_c: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        executed.append((statement, parameters))

    rng = random.Random(seed)
    captured: Capture = {}
    try:
        source = _source(database)
        for patient in facts[:patients]:
            mix = QueryMix([patient])
            for kind in mix.kinds:
                if not kind.patient_scoped:
                    continue
                resource_type, _, query = mix.fill(kind, rng).partition("?")
                request = parse_search(
                    resource_type, parse_qsl(query), config.search, base_url=BASE, limits=LIMITS
                )
                request = confine_to_patient(request, config.search, config.compartment)
                executed.clear()
                with database.session(write=False) as session:
                    repository = Repository(session, source)
                    page = repository.search(request, limit=request.count)
                    if request.includes:
                        repository.included(page.matches, request.includes, limit=LIMITS.max_count)
                captured.setdefault(kind.name, []).append(list(executed))
    finally:
        database.dispose()
    return captured


def _source(database: Database) -> Actor:
    """The backend client of the Organization that recorded the loaded records."""
    with database.session(write=False) as session:
        recorder = session.execute(
            text("SELECT recorded_by FROM resource WHERE patient_id IS NOT NULL LIMIT 1")
        ).scalar_one()
    return Actor(
        kind=ActorKind.client,
        display="benchmark source",
        scopes=Scopes.parse("system/*.cruds"),
        organization_id=str(recorder).removeprefix("Organization/"),
        client_id="bench",
    )


def _explained(connection: psycopg.Connection[Any], statements: Statements) -> tuple[float, float]:
    """Planning and execution time of a search's statements, in µs."""
    planning = execution = 0.0
    for statement, parameters in statements:
        rows = connection.execute(
            "EXPLAIN (ANALYZE, SUMMARY, TIMING OFF, COSTS OFF) " + statement, parameters
        ).fetchall()
        plan = "\n".join(row[0] for row in rows)
        planning += float(_number(r"Planning Time: ([\d.]+)", plan))
        execution += float(_number(r"Execution Time: ([\d.]+)", plan))
    return planning * 1000, execution * 1000


def _number(pattern: str, plan: str) -> str:
    found = re.search(pattern, plan)
    if found is None:
        raise SystemExit(f"EXPLAIN gave no {pattern!r}:\n{plan}")
    return found.group(1)


def compare(url: str, before: Capture, after: Capture, rounds: int) -> list[list[str]]:
    """Per kind, the medians of both captures, their searches alternated."""
    libpq_url = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    rows = []
    totals = {"before": [0.0, 0.0], "after": [0.0, 0.0]}
    with psycopg.connect(libpq_url, autocommit=True) as connection:
        for kind in before:
            times: dict[str, tuple[list[float], list[float]]] = {
                "before": ([], []),
                "after": ([], []),
            }
            for _ in range(rounds):
                for one, other in zip(before[kind], after.get(kind, []), strict=True):
                    for side, statements in (("before", one), ("after", other)):
                        planning, execution = _explained(connection, statements)
                        times[side][0].append(planning)
                        times[side][1].append(execution)
            row = [kind, str(len(before[kind][0]))]
            for side in ("before", "after"):
                planning, execution = (statistics.median(t) for t in times[side])
                totals[side][0] += planning
                totals[side][1] += execution
                row += [f"{planning:,.0f}", f"{execution:,.0f}"]
            rows.append(row)
    rows.append(
        ["sum", "", *(f"{value:,.0f}" for side in ("before", "after") for value in totals[side])]
    )
    return rows


COLUMNS = [
    "kind",
    "statements of a search",
    "before: planning µs",
    "before: execution µs",
    "after: planning µs",
    "after: execution µs",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    capturing = commands.add_parser("capture", help="save this tree's statements")
    capturing.add_argument("--database-url", required=True)
    capturing.add_argument("--facts", type=Path, required=True)
    capturing.add_argument("--patients", type=int, default=20)
    capturing.add_argument("--seed", type=int, default=1)
    capturing.add_argument("out", type=Path)
    comparing = commands.add_parser("compare", help="EXPLAIN two captures, alternated")
    comparing.add_argument("--database-url", required=True)
    comparing.add_argument("--rounds", type=int, default=10)
    comparing.add_argument("--markdown", action="store_true")
    comparing.add_argument("before", type=Path)
    comparing.add_argument("after", type=Path)
    options = parser.parse_args()

    if options.command == "capture":
        captured = capture(options.database_url, options.facts, options.patients, options.seed)
        # Our own file, read back by `compare` only: parameters keep their types.
        options.out.write_bytes(pickle.dumps(captured))
        return
    before, after = (pickle.loads(path.read_bytes()) for path in (options.before, options.after))
    rows = compare(options.database_url, before, after, options.rounds)
    title = f"PostgreSQL per search, median of {options.rounds} rounds"
    print_table(title, COLUMNS, rows, as_markdown=options.markdown)


if __name__ == "__main__":
    main()
