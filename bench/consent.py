"""Consent benchmark: the search mix as a clinician under the access rules vs. the system.

Issue 6: "the cost of consent filtering and logging on the search benchmark". The
system caller is not reachable over HTTP (no token names it), so both callers are
measured in-process, on the code path below HTTP that `health.fhir.http.unit_of_work`
runs for a read: a read-only session, `Repository` for the caller, `Interactions`,
`searchset_bundle` (or `everything_bundle`), then, for the clinician, the access-log
entries (`disclosure_entries`, `refusal_entries`) appended in a write session of
their own; finally the Bundle is serialised, as `json_response` does. Token checks,
routing and the socket are the same for both callers and are not in these figures.

The data is search_data.py's (the provider directory, the Synthea patients and clones,
loaded over HTTP by a backend client), plus, written in-process: an organisation
(`bench-care-org`) with the bench clinician's role (recorded by the system), one
recent Encounter per patient there (recorded by that organisation, so every patient
is treated by it: every row's visibility rests on `care_relationship`, since that
organisation recorded nothing else), a Consent for 10% of the patients blocking the
organisation of their newest Synthea encounter and one for 5% hiding that encounter
(so the NOT EXISTS checks have rows to read). Same seed, same data.

Each query of the mix (queries.py) is run by both callers in turn (alternating who
goes first), so that both see the same load from other processes; `next` links are
followed by each caller from its own Bundle.

    .venv/bin/python bench/consent.py --database both --patients 100 1000 --repeat 2

See docs/BENCHMARKS.md ("Consent and logging") for the figures measured here.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
from ingest import DEFAULT_POSTGRES, DEFAULT_SHARED_DATA
from queries import QueryMix
from rich.console import Console
from rich.table import Table
from search import KindStats, kind_names, machine_busy_s, markdown
from search_data import LoadOptions, loaded_database
from sqlalchemy import event, text

from health.access.actor import SYSTEM, Actor, ActorKind
from health.access.disclosure import consent_entries, disclosure_entries, refusal_entries
from health.audit.log import AuditLog
from health.auth.scopes import Scopes
from health.db import access_sql
from health.db.engine import Database
from health.db.repository import Repository
from health.fhir.config import FhirConfig
from health.fhir.content import dumps
from health.fhir.everything import everything_bundle
from health.fhir.http import care_rules
from health.fhir.interactions import Interactions
from health.fhir.listing import searchset_bundle
from health.fhir.validation import check
from health.settings import Settings

CARE_ORGANISATION = "bench-care-org"
CLINICIAN = "bench-clinician"
BLOCK_SHARE = 0.10
HIDE_SHARE = 0.05
WRITES_PER_SESSION = 100
ALL = "all"
PATIENT_SCOPED = "patient-scoped"
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
# Patients tried for an example of a next page (not every patient's search has one).
EXAMPLE_TRIES = 200


# The data the rules need


def write_as(
    database: Database, config: FhirConfig, recorder: Actor, resources: list[dict[str, Any]]
) -> None:
    """Store `resources` (each with its id) as written by `recorder`, in a few sessions."""
    for start in range(0, len(resources), WRITES_PER_SESSION):
        with database.session(write=True) as session:
            interactions = Interactions(Repository(session, recorder), config)
            for resource in resources[start : start + WRITES_PER_SESSION]:
                checked = check(resource, resource["resourceType"], config.types)
                interactions.update(resource["id"], checked)
            interactions.flush()


def newest_encounter(database: Database, config: FhirConfig, patient_id: str) -> dict[str, Any]:
    """The patient's newest Synthea Encounter (the bench's own visits left out)."""
    with database.session(write=False) as session:
        interactions = Interactions(Repository.system(session), config)
        bundle = searchset_bundle(
            interactions,
            base=config.settings.fhir_base_url,
            resource_type="Encounter",
            params=[("patient", patient_id), ("_sort", "-date"), ("_count", "5")],
        )
    # Stored resources come as the stored bytes (orjson.Fragment): read them back.
    found = [orjson.loads(orjson.dumps(e["resource"])) for e in bundle.get("entry", [])]
    return next(r for r in found if not r["id"].startswith("bench-"))


def consent(consent_id: str, patient_id: str, provision: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Consent",
        "id": consent_id,
        "status": "active",
        "scope": {"coding": [{"system": CONSENT_SCOPE, "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{patient_id}"},
        "policyRule": {"coding": [{"code": "OPTOUT"}]},
        "provision": provision,
    }


@dataclass
class World:
    blocked: int = 0
    hidden: int = 0
    setup_s: float = 0.0


def build_world(database: Database, config: FhirConfig, patient_ids: list[str], seed: int) -> World:
    """The clinician, their organisation treating everyone, and the consents."""
    started = time.perf_counter()
    rng = random.Random(seed)
    now = datetime.now(UTC)
    care = f"Organization/{CARE_ORGANISATION}"
    write_as(
        database,
        config,
        SYSTEM,
        [
            {"resourceType": "Organization", "id": CARE_ORGANISATION, "name": "Bench Clinic"},
            {"resourceType": "Practitioner", "id": CLINICIAN, "name": [{"family": "Bench"}]},
            {
                "resourceType": "PractitionerRole",
                "id": f"{CLINICIAN}-role",
                "active": True,
                "practitioner": {"reference": f"Practitioner/{CLINICIAN}"},
                "organization": {"reference": care},
            },
        ],
    )
    visits = []
    for number, patient_id in enumerate(patient_ids):
        day = (now - timedelta(days=rng.randint(1, 300))).strftime("%Y-%m-%dT%H:%M:%SZ")
        visits.append(
            {
                "resourceType": "Encounter",
                "id": f"bench-visit-{number}",
                "status": "finished",
                "class": {"code": "AMB"},
                "subject": {"reference": f"Patient/{patient_id}"},
                "serviceProvider": {"reference": care},
                "period": {"start": day, "end": day},
            }
        )
    organisation = Actor(kind=ActorKind.client, display=care, organization_id=CARE_ORGANISATION)
    write_as(database, config, organisation, visits)
    blocked = rng.sample(patient_ids, max(1, round(BLOCK_SHARE * len(patient_ids))))
    hidden = rng.sample(patient_ids, max(1, round(HIDE_SHARE * len(patient_ids))))
    consents = []
    for number, patient_id in enumerate(blocked):
        episode = newest_encounter(database, config, patient_id)
        other = episode.get("serviceProvider", {}).get("reference", "Organization/elsewhere")
        actor = {"role": {"coding": [{"system": PARTICIPATION, "code": "PRCP"}]}}
        provision = {"type": "deny", "actor": [{**actor, "reference": {"reference": other}}]}
        consents.append(consent(f"bench-block-{number}", patient_id, provision))
    for number, patient_id in enumerate(hidden):
        episode = newest_encounter(database, config, patient_id)
        data = [{"meaning": "related", "reference": {"reference": f"Encounter/{episode['id']}"}}]
        consents.append(consent(f"bench-hide-{number}", patient_id, {"type": "deny", "data": data}))
    write_as(database, config, SYSTEM, consents)
    if not database.is_sqlite:
        # What autovacuum would do within a minute of these writes.
        with database.write_engine.connect() as connection:
            connection.execute(text("ANALYZE"))
            connection.commit()
    return World(len(blocked), len(hidden), time.perf_counter() - started)


# One query, as the server answers it


@dataclass
class Answer:
    latency_s: float
    log_s: float
    entries: int
    next_url: str | None
    # Of latency_s: building the caller's scope clause(s) in Python, and the time the
    # database driver spent in execute() for the read (on PostgreSQL that includes
    # fetching every row; on SQLite only up to the first row).
    scope_s: float = 0.0
    sql_s: float = 0.0


class Stopwatch:
    """Times, for the running query, `access_sql.visible_clause` and every execute()."""

    def __init__(self, database: Database) -> None:
        self.scope_s = 0.0
        self.sql_s = 0.0
        self._started: float | None = None
        self._build = build = access_sql.visible_clause

        def timed_build(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return build(*args, **kwargs)
            finally:
                self.scope_s += time.perf_counter() - started

        # The repository calls `access_sql.visible_clause` through the module: timing
        # it there changes nothing but adds two clock reads.
        access_sql.visible_clause = timed_build  # type: ignore[assignment]
        engines = {id(e): e for e in (database.read_engine, database.write_engine)}
        for engine in engines.values():
            event.listen(engine, "before_cursor_execute", self._before)
            event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, *_: Any) -> None:
        self._started = time.perf_counter()

    def _after(self, *_: Any) -> None:
        if self._started is not None:
            self.sql_s += time.perf_counter() - self._started
            self._started = None

    def reset(self) -> None:
        self.scope_s = self.sql_s = 0.0

    def close(self) -> None:
        access_sql.visible_clause = self._build  # type: ignore[assignment]


class Caller:
    """Runs relative FHIR URLs of the mix as one caller, the way unit_of_work does."""

    def __init__(
        self,
        database: Database,
        config: FhirConfig,
        actor: Actor,
        stopwatch: Stopwatch,
        *,
        logged: bool,
    ) -> None:
        self.database = database
        self.stopwatch = stopwatch
        self.config = config
        self.actor = actor
        self.logged = logged
        self.base = config.settings.fhir_base_url
        self._key = config.settings.audit_key.encode()

    def repository(self, session: Any) -> Repository:
        if self.actor.kind is ActorKind.system:
            return Repository.system(session)
        return Repository(session, self.actor, rules=care_rules(self.config.settings))

    def bundle(self, interactions: Interactions, url: str) -> tuple[dict[str, Any], str]:
        """The Bundle for `url` (relative to the FHIR base, or absolute on it); the action."""
        if url.startswith(self.base):
            url = url[len(self.base) :]
        parts = urlsplit(url.lstrip("/"))
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        path = parts.path.split("/")
        if len(path) == 3 and path[0] == "Patient" and path[2] == "$everything":
            bundle = everything_bundle(
                interactions, base=self.base, patient_id=path[1], params=dict(pairs)
            )
            return bundle, "everything"
        bundle = searchset_bundle(interactions, base=self.base, resource_type=path[0], params=pairs)
        return bundle, "search"

    def ask(self, url: str) -> Answer:
        self.stopwatch.reset()
        started = time.perf_counter()
        with self.database.session(write=False) as session:
            repository = self.repository(session)
            interactions = Interactions(repository, self.config)
            bundle, action = self.bundle(interactions, url)
            interactions.flush()
            scope_s, sql_s = self.stopwatch.scope_s, self.stopwatch.sql_s
            log_started = time.perf_counter()
            entries = []
            if self.logged:
                entries += consent_entries(repository, interactions.written)
                entries += disclosure_entries(repository, action)
                entries += refusal_entries(repository, action, "not visible to the caller")
            log_s = time.perf_counter() - log_started
        if entries:
            log_started = time.perf_counter()
            with self.database.session(write=True) as session:
                AuditLog(session, self._key).append(entries, datetime.now(UTC))
            log_s += time.perf_counter() - log_started
        dumps(bundle)
        next_url = next(
            (link["url"] for link in bundle.get("link", []) if link["relation"] == "next"), None
        )
        latency_s = time.perf_counter() - started
        return Answer(latency_s, log_s, len(bundle.get("entry", [])), next_url, scope_s, sql_s)


# Measuring


@dataclass
class KindPair:
    """Both callers' answers to the same queries of one kind."""

    system: KindStats
    clinician: KindStats
    log: KindStats
    scope: KindStats
    system_sql: KindStats
    clinician_sql: KindStats
    compared: int = 0
    differing: int = 0

    @classmethod
    def named(cls, name: str) -> KindPair:
        return cls(*(KindStats(name) for _ in range(6)))

    def series(self) -> tuple[KindStats, ...]:
        return (
            self.system,
            self.clinician,
            self.log,
            self.scope,
            self.system_sql,
            self.clinician_sql,
        )

    def add(self, system: Answer, clinician: Answer) -> None:
        for stats, answer in ((self.system, system), (self.clinician, clinician)):
            stats.latencies_s.append(answer.latency_s)
            stats.entries += answer.entries
        self.log.latencies_s.append(clinician.log_s)
        self.scope.latencies_s.append(clinician.scope_s)
        self.system_sql.latencies_s.append(system.sql_s)
        self.clinician_sql.latencies_s.append(clinician.sql_s)
        self.compared += 1
        self.differing += system.entries != clinician.entries

    def merged_into(self, total: KindPair) -> None:
        for mine, theirs in zip(self.series(), total.series(), strict=True):
            theirs.latencies_s += mine.latencies_s
            theirs.entries += mine.entries
        total.compared += self.compared
        total.differing += self.differing


@dataclass
class ConsentRun:
    database: str
    patients: int
    repetition: int
    world: World
    kinds: dict[str, KindPair] = field(default_factory=dict)
    wall_s: float = 0.0
    # CPU the rest of the machine used meanwhile (100% is one core): how noisy it was.
    others_cpu: float = 0.0

    def total(self, name: str, kinds: list[str]) -> KindPair:
        merged = KindPair.named(name)
        for kind in kinds:
            self.kinds[kind].merged_into(merged)
        return merged


def measure(
    mix: QueryMix, system: Caller, clinician: Caller, run: ConsentRun, rounds: int, seed: int
) -> None:
    """`rounds` rounds of the mix (one query of each kind), each query by both callers."""
    run.kinds = {name: KindPair.named(name) for name in kind_names(mix.kinds)}
    stream = mix.stream(0, seed)
    busy_before, own_before = machine_busy_s(), time.process_time()
    started = time.perf_counter()
    for number in range(rounds * len(mix.kinds)):
        planned = next(stream)
        # Alternate who goes first: neither always finds the caches warmed by the other.
        callers = (system, clinician) if number % 2 == 0 else (clinician, system)
        answers = {id(c): c.ask(planned.url) for c in callers}
        first_system, first_clinician = answers[id(system)], answers[id(clinician)]
        run.kinds[planned.kind.name].add(first_system, first_clinician)
        if planned.kind.follow_next and first_system.next_url and first_clinician.next_url:
            pages = {
                id(system): system.ask(first_system.next_url),
                id(clinician): clinician.ask(first_clinician.next_url),
            }
            run.kinds[planned.kind.next_page_name].add(pages[id(system)], pages[id(clinician)])
    run.wall_s = time.perf_counter() - started
    others = (machine_busy_s() - busy_before) - (time.process_time() - own_before)
    run.others_cpu = max(0.0, others) / run.wall_s


# Plans of the statements one query sends


@contextlib.contextmanager
def captured_statements(database: Database) -> Iterator[list[tuple[str, Any]]]:
    statements: list[tuple[str, Any]] = []

    def keep(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append((statement, parameters))

    engine = database.read_engine
    event.listen(engine, "before_cursor_execute", keep)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", keep)


def explain(database: Database, caller: Caller, url: str, console: Console) -> None:
    """Each SELECT the caller's query sends, with its plan (PostgreSQL: as executed)."""
    with captured_statements(database) as statements:
        caller.ask(url)
    prefix = "EXPLAIN QUERY PLAN " if database.is_sqlite else "EXPLAIN (ANALYZE, BUFFERS) "
    for statement, parameters in statements:
        if not statement.lstrip().upper().startswith("SELECT"):
            continue
        with database.read_engine.connect() as connection:
            rows = connection.exec_driver_sql(prefix + statement, parameters).all()
        console.print(f"[bold]{caller.actor.kind.value}[/bold]: {statement}", highlight=False)
        console.print(f"  parameters: {parameters}", highlight=False, markup=False)
        # SQLite: (id, parent, unused, detail); PostgreSQL: one line of text per row.
        plan = [
            f"{row[1]:>3} {row[0]:>3} {row[3]}" if database.is_sqlite else row[0] for row in rows
        ]
        console.print("\n".join(f"  {line}" for line in plan), highlight=False, markup=False)


def example_url(mix: QueryMix, kind_name: str, caller: Caller, seed: int) -> str | None:
    """A URL of the kind (for a next page: the `next` link the caller got) to explain."""
    base_name = kind_name.removesuffix(" (next page)")
    kind = next(k for k in mix.kinds if k.name == base_name)
    rng = random.Random(seed)
    for _ in range(EXAMPLE_TRIES):
        url = mix.fill(kind, rng)
        if base_name == kind_name:
            return url
        following = caller.ask(url).next_url
        if following is not None:
            return following
    return None


# Report


def _ms(stats: KindStats, fraction: float) -> str:
    value = stats.percentile_ms(fraction)
    return "-" if value is None else f"{value:,.1f}"


def _extra(pair: KindPair, fraction: float) -> str:
    system, clinician = pair.system.percentile_ms(fraction), pair.clinician.percentile_ms(fraction)
    if not system or clinician is None:
        return "-"
    return f"{(clinician - system) / system * 100:+.0f}%"


def _filter_only(pair: KindPair, fraction: float) -> str:
    """The clinician's latency without the log, against the system's."""
    without = KindStats(pair.clinician.name)
    without.latencies_s = [
        total - log
        for total, log in zip(pair.clinician.latencies_s, pair.log.latencies_s, strict=True)
    ]
    system, clinician = pair.system.percentile_ms(fraction), without.percentile_ms(fraction)
    if not system or clinician is None:
        return "-"
    return f"{(clinician - system) / system * 100:+.0f}%"


COLUMNS = [
    "query",
    "samples",
    "system p50 ms",
    "system p95 ms",
    "clinician p50 ms",
    "clinician p95 ms",
    "extra p50",
    "extra p95",
    "filter only p50",
    "log p50 ms",
    "log p95 ms",
    "scope build p50 ms",
    "SQL p50 ms system / clinician",
    "entries system / clinician",
    "differing counts",
]


def rows(run: ConsentRun, mix: QueryMix) -> list[list[str]]:
    scoped = run.total(PATIENT_SCOPED, [k.name for k in mix.kinds if k.patient_scoped])
    every = [*run.kinds.values(), scoped, run.total(ALL, list(run.kinds))]
    return [
        [
            pair.system.name,
            f"{pair.compared:,}",
            _ms(pair.system, 0.50),
            _ms(pair.system, 0.95),
            _ms(pair.clinician, 0.50),
            _ms(pair.clinician, 0.95),
            _extra(pair, 0.50),
            _extra(pair, 0.95),
            _filter_only(pair, 0.50),
            _ms(pair.log, 0.50),
            _ms(pair.log, 0.95),
            _ms(pair.scope, 0.50),
            f"{_ms(pair.system_sql, 0.50)} / {_ms(pair.clinician_sql, 0.50)}",
            f"{pair.system.entries:,} / {pair.clinician.entries:,}",
            f"{pair.differing:,}",
        ]
        for pair in every
        if pair.compared
    ]


def label(run: ConsentRun) -> str:
    return (
        f"{run.database}, {run.patients:,} patients, run {run.repetition}: {run.wall_s:.0f} s, "
        f"other processes {run.others_cpu * 100:.0f}% CPU; {run.world.blocked} blocks, "
        f"{run.world.hidden} hidden episodes"
    )


def print_run(run: ConsentRun, mix: QueryMix, console: Console) -> None:
    table = Table(title=f"Consent and logging: {label(run)}")
    for i, name in enumerate(COLUMNS):
        table.add_column(name, justify="left" if i == 0 else "right")
    for row in rows(run, mix):
        table.add_row(*row)
    console.print(table)


# Command line


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="sqlite")
    parser.add_argument("--patients", type=int, nargs="+", default=[1000])
    parser.add_argument("--rounds", type=int, default=40, help="rounds of the mix per run")
    parser.add_argument(
        "--repeat", type=int, default=2, help="measured runs per database (the quieter counts)"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the data and the mix")
    parser.add_argument("--load-workers", type=int, default=2)
    parser.add_argument("--load-clients", type=int, default=4)
    parser.add_argument(
        "--reuse", type=Path, metavar="DIR", help="as bench/search.py --reuse (the loaded data)"
    )
    parser.add_argument(
        "--explain",
        metavar="QUERY",
        action="append",
        default=[],
        help="print the plans of the statements one query of this kind (or 'KIND (next "
        "page)') sends, as each caller",
    )
    parser.add_argument("--shared-data", type=Path, default=DEFAULT_SHARED_DATA)
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES, help="admin connection URL")
    parser.add_argument("--markdown", action="store_true", help="also print Markdown tables")
    arguments = parser.parse_args(argv)
    if any(p < 1 or p > 100_000 for p in arguments.patients):
        parser.error("--patients takes values from 1 to 100000")
    if not 1 <= arguments.rounds <= 10_000 or not 1 <= arguments.repeat <= 20:
        parser.error("--rounds takes 1 to 10000, --repeat 1 to 20")
    return arguments


def _interrupt(_signal: int, _frame: object) -> None:
    raise KeyboardInterrupt


def run_database(
    database_name: str, patients: int, arguments: argparse.Namespace, console: Console
) -> tuple[list[ConsentRun], QueryMix]:
    options = LoadOptions(
        shared_data=arguments.shared_data,
        postgres_admin_url=arguments.postgres_url,
        seed=arguments.seed,
        workers=arguments.load_workers,
        clients=arguments.load_clients,
        reuse_dir=arguments.reuse,
        analyze=database_name == "postgresql",
    )
    console.print(f"[bold]load[/bold] {database_name}, {patients:,} patients")
    with loaded_database(database_name, patients, options, console) as loaded:
        report = loaded.report
        console.print(
            f"  {report.patients:,} patients, {report.resources:,} resources, "
            f"{report.errors} errors" + (f"; first: {report.first_error}" if report.errors else "")
        )
        settings = Settings(database_url=loaded.url)
        config = FhirConfig.load(settings)
        database = Database(loaded.url)
        with contextlib.ExitStack() as stack:
            stack.callback(database.dispose)
            mix = QueryMix(loaded.facts)
            world = build_world(
                database, config, [f.patient_id for f in loaded.facts], arguments.seed
            )
            console.print(
                f"  setup {world.setup_s:.0f} s: {world.blocked} blocks, "
                f"{world.hidden} hidden episodes"
            )
            clinician_actor = Actor(
                kind=ActorKind.clinician,
                display="Bench Clinician",
                scopes=Scopes.parse("user/*.rs"),
                fhir_user=f"Practitioner/{CLINICIAN}",
            )
            stopwatch = Stopwatch(database)
            stack.callback(stopwatch.close)
            system = Caller(database, config, SYSTEM, stopwatch, logged=False)
            clinician = Caller(database, config, clinician_actor, stopwatch, logged=True)
            # Warm-up: caches, connections, the planner's statistics.
            measure(mix, system, clinician, ConsentRun(database_name, 0, 0, world), 1, 0)
            runs = []
            for repetition in range(1, arguments.repeat + 1):
                run = ConsentRun(database_name, report.patients, repetition, world)
                measure(mix, system, clinician, run, arguments.rounds, arguments.seed)
                print_run(run, mix, console)
                runs.append(run)
            for kind_name in arguments.explain:
                for caller in (system, clinician):
                    url = example_url(mix, kind_name, caller, arguments.seed)
                    if url is None:
                        console.print(f"no query of {kind_name!r} found to explain")
                        continue
                    explain(database, caller, url, console)
    return runs, mix


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    console = Console(width=None if sys.stdout.isatty() else 240)
    databases = ["sqlite", "postgresql"] if arguments.database == "both" else [arguments.database]
    chosen: list[tuple[ConsentRun, QueryMix]] = []
    for database_name in databases:
        for patients in arguments.patients:
            runs, mix = run_database(database_name, patients, arguments, console)
            chosen.append((min(runs, key=lambda r: r.others_cpu), mix))
    if arguments.markdown:
        for run, mix in chosen:
            text_rows = rows(run, mix)
            console.print(
                f"\n{label(run)} (the quieter run):\n\n" + markdown(COLUMNS, text_rows),
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
