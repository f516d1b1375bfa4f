"""Ingest benchmark: Synthea transaction Bundles pushed over HTTP to a fresh server.

For every combination of database, worker count, client count, source count and
generated-bundle count, this starts `health serve` on a new database (a temporary
SQLite file, or a new PostgreSQL database that is dropped afterwards), registers one
backend client per source (each for an Organization of its own, with its own key and
bearer tokens from the server's token endpoint: bench/auth.py), loads the 2021
provider directory (batch Bundles with conditional creates) as the first source, then
has every source push every patient Bundle, from C concurrent clients spread over the
sources round-robin. Everything a backend client writes goes through the push path
(person matching on the national ID, ids derived from the source's, directory
deduplication, a Provenance per push), so with several sources each citizen's Patient
is matched and merged once per source. Measured: resources/s, per-Bundle latency, the
server's CPU and memory; checked afterwards: one Patient per distinct person, and the
Provenance and directory counts. All traffic goes to 127.0.0.1.

    .venv/bin/python bench/ingest.py --database both --workers 1 2 --clients 4 \\
        --sources 1 4 --generated 60

See docs/BENCHMARKS.md for the figures measured on the project's 2-core machine.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import queue
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
from generate import (
    BundleFile,
    generated_bundles,
    national_ids,
    patient_templates,
    provider_bundles,
    split_batch,
)
from generate import real_bundles as load_real_bundles
from rich.console import Console
from rich.table import Table
from server import MemorySampler, Server, cpu_seconds, process_tree
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from health.ingest.push import DIRECTORY_TYPES

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SHARED_DATA = Path(
    os.environ.get("HEALTH_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data")
)
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
HEADERS = {
    "Content-Type": "application/fhir+json",
    "Accept": "application/fhir+json",
    "Prefer": "return=minimal",
}
# One request may take long on a slow machine, but never forever.
REQUEST_TIMEOUT = httpx.Timeout(600.0, connect=10.0)
ERROR_BODY_CHARS = 600
RETRIES = 3


@dataclass(frozen=True)
class RunPlan:
    """One measured run: which database, how many workers, clients, clones and sources."""

    database: str
    workers: int
    clients: int
    generated: int
    sources: int = 1


@dataclass(frozen=True)
class Posted:
    """The outcome of POSTing one Bundle."""

    latency_s: float
    accepted: int
    error: str | None
    retries: int = 0


@dataclass
class RunResult:
    plan: RunPlan
    provider_resources: int = 0
    provider_s: float = 0.0
    bundles: int = 0
    resources: int = 0
    wall_s: float = 0.0
    latencies_s: list[float] = field(default_factory=list)
    errors: int = 0
    retries: int = 0
    first_error: str | None = None
    server_cpu_s: float = 0.0
    peak_rss_kib: int = 0
    peak_hwm_kib: int = 0
    database_bytes: int = 0
    # Counted through /fhir after the run (None if the count failed).
    people: int = 0
    patients: int | None = None
    provenances: int | None = None
    directory_added: int | None = None

    @property
    def resources_per_s(self) -> float:
        return self.resources / self.wall_s if self.wall_s else 0.0

    def percentile_ms(self, fraction: float) -> float:
        if not self.latencies_s:
            return 0.0
        if len(self.latencies_s) == 1:
            return self.latencies_s[0] * 1000
        cuts = statistics.quantiles(self.latencies_s, n=100, method="inclusive")
        return cuts[round(fraction * 100) - 1] * 1000

    def note_error(self, message: str) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = message


# Databases


@contextlib.contextmanager
def sqlite_database() -> Iterator[tuple[str, Path]]:
    """A new SQLite file in a temporary folder, removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="health-bench-"))
    try:
        yield f"sqlite:///{folder / 'bench.db'}", folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A freshly created PostgreSQL database, dropped afterwards."""
    url = make_url(admin_url)
    if url.host not in LOOPBACK:
        raise SystemExit(f"The benchmark only talks to this machine, not to {url.host}")
    name = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield url.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def postgres_size(database_url: str) -> int:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return int(
                connection.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
            )
    finally:
        engine.dispose()


def folder_size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.iterdir() if path.is_file())


# Posting


def post_bundle(client: httpx.Client, bundle: BundleFile, auth: httpx.Auth) -> Posted:
    """POST one Bundle as the source `auth` stands for; entries whose response status is
    2xx count as accepted.

    A transaction that lost a race on a conditional create (409, or 412 saying "retry")
    is sent again, at most RETRIES times, as a client should; latency includes retries.
    """
    started = time.perf_counter()
    retries = 0
    while True:
        try:
            response = client.post("/fhir", content=bundle.body, headers=HEADERS, auth=auth)
        except httpx.HTTPError as error:
            return Posted(time.perf_counter() - started, 0, f"{bundle.name}: {error!r}", retries)
        if retries < RETRIES and _asks_for_retry(response):
            retries += 1
            continue
        break
    latency = time.perf_counter() - started
    if not response.is_success:
        return Posted(
            latency,
            0,
            f"{bundle.name}: HTTP {response.status_code}: {response.text[:ERROR_BODY_CHARS]}",
            retries,
        )
    entries = orjson.loads(response.content).get("entry", [])
    accepted = 0
    failure: str | None = None
    for entry in entries:
        status = str((entry.get("response") or {}).get("status", ""))
        if status.startswith("2"):
            accepted += 1
        elif failure is None:
            outcome = orjson.dumps((entry.get("response") or {}).get("outcome")).decode()
            failure = f"{bundle.name}: entry status {status}: {outcome[:ERROR_BODY_CHARS]}"
    return Posted(latency, accepted, failure, retries)


def _asks_for_retry(response: httpx.Response) -> bool:
    return response.status_code == 409 or (response.status_code == 412 and "retry" in response.text)


def source_orders(
    bundles: list[BundleFile], sources: int, *, lockstep: bool = False
) -> list[list[BundleFile]]:
    """What each source pushes, in order: every Bundle, once per source.

    Source s starts s/N of the way through the list and wraps around, so that at any
    moment the sources push for different citizens, and in the end every citizen has
    been pushed by every source (a hospital and a GP sending for the same person, at
    different times). With `lockstep` all sources push in the same order: they then
    push for the same citizen at the same time, the worst case for the Patient merge.
    """
    orders = []
    for source in range(sources):
        start = 0 if lockstep else source * len(bundles) // sources
        orders.append(bundles[start:] + bundles[:start])
    return orders


def sources_of_client(client: int, clients: int, sources: int) -> list[int]:
    """The sources client thread `client` pushes for: clients are spread over the
    sources round-robin; with fewer clients than sources, a client takes turns at
    several."""
    if clients >= sources:
        return [client % sources]
    return list(range(client, sources, clients))


def post_all(
    base_url: str,
    auths: list[httpx.Auth],
    orders: list[list[BundleFile]],
    clients: int,
    result: RunResult,
) -> None:
    """POST each source's Bundles with its tokens (`auths[s]`, `orders[s]`) from
    `clients` threads, each with its own connection, spread over the sources.

    Each source's Bundles are shared by the clients pushing for it. When the clients
    do not divide evenly among the sources, some sources have more clients than others
    and finish earlier; the rest of the run has fewer clients at work.
    """
    work: list[queue.Queue[BundleFile]] = []
    for order in orders:
        source_work: queue.Queue[BundleFile] = queue.Queue()
        for bundle in order:
            source_work.put(bundle)
        work.append(source_work)
    lock = threading.Lock()

    def client_loop(number: int) -> None:
        serving = sources_of_client(number, clients, len(orders))
        with httpx.Client(base_url=base_url, timeout=REQUEST_TIMEOUT) as client:
            while serving:
                for source in list(serving):
                    try:
                        bundle = work[source].get_nowait()
                    except queue.Empty:
                        serving.remove(source)
                        continue
                    posted = post_bundle(client, bundle, auths[source])
                    with lock:
                        result.bundles += 1
                        result.resources += posted.accepted
                        result.latencies_s.append(posted.latency_s)
                        result.retries += posted.retries
                        if posted.error:
                            result.note_error(posted.error)

    threads = [
        threading.Thread(target=client_loop, args=(i,), name=f"client-{i}", daemon=True)
        for i in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def count_resources(client: httpx.Client, auth: httpx.Auth, resource_type: str) -> int:
    """How many `resource_type` resources the server holds (a search with _summary=count)."""
    response = client.get(f"/fhir/{resource_type}", params={"_summary": "count"}, auth=auth)
    response.raise_for_status()
    return int(response.json()["total"])


def directory_size(client: httpx.Client, auth: httpx.Auth) -> int:
    """Organizations, Practitioners and Locations: the directory every source shares."""
    return sum(count_resources(client, auth, kind) for kind in sorted(DIRECTORY_TYPES))


def load_providers(
    base_url: str,
    auth: httpx.Auth,
    providers: list[BundleFile],
    result: RunResult,
    analyze_url: str | None,
) -> None:
    """POST the provider directory in order; on PostgreSQL, ANALYZE after each chunk.

    Without fresh statistics PostgreSQL plans the conditional-create lookup as a scan
    of every resource of the type times every token of the type, so a fresh database
    slows down quadratically per lookup (docs/BENCHMARKS.md, "PostgreSQL and stale
    statistics"). The server does not ANALYZE yet; the benchmark does, between chunks.
    """
    analyzer = create_engine(analyze_url, isolation_level="AUTOCOMMIT") if analyze_url else None
    started = time.perf_counter()
    try:
        with httpx.Client(base_url=base_url, timeout=REQUEST_TIMEOUT) as client:
            for bundle in providers:
                posted = post_bundle(client, bundle, auth)
                result.provider_resources += posted.accepted
                if posted.error:
                    result.note_error(posted.error)
                if analyzer is not None:
                    with analyzer.connect() as connection:
                        connection.execute(text("ANALYZE"))
    finally:
        if analyzer is not None:
            analyzer.dispose()
    result.provider_s = time.perf_counter() - started


def run(
    plan: RunPlan,
    providers: list[BundleFile],
    patients: list[BundleFile],
    postgres_admin_url: str,
    console: Console,
    py_spy_output: Path | None = None,
    *,
    pg_analyze: bool = False,
    lockstep: bool = False,
) -> RunResult:
    """One run on a fresh database with a freshly started server."""
    executable = Path(sys.executable).parent / "health"
    result = RunResult(plan)
    with contextlib.ExitStack() as stack:
        log_folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="health-log-")))
        if plan.database == "sqlite":
            database_url, sqlite_folder = stack.enter_context(sqlite_database())
        else:
            database_url = stack.enter_context(postgres_database(postgres_admin_url))
            sqlite_folder = None
        server = Server(
            executable,
            database_url,
            plan.workers,
            log_folder / "server.log",
            py_spy_output=py_spy_output,
            sources=plan.sources,
        )
        stack.enter_context(server.running())
        sampler = stack.enter_context(MemorySampler(server.pid))
        analyze = database_url if plan.database == "postgresql" and pg_analyze else None
        load_providers(server.base_url, server.auth, providers, result, analyze)
        counter = stack.enter_context(
            httpx.Client(base_url=server.base_url, timeout=REQUEST_TIMEOUT)
        )
        directory_before = directory_size(counter, server.auth)
        orders = source_orders(patients, plan.sources, lockstep=lockstep)
        cpu_before = cpu_seconds(process_tree(server.pid))
        started = time.perf_counter()
        post_all(server.base_url, list(server.source_auths), orders, plan.clients, result)
        result.wall_s = time.perf_counter() - started
        cpu_after = cpu_seconds(process_tree(server.pid))
        result.server_cpu_s = sum(
            used - cpu_before.get(pid, 0.0) for pid, used in cpu_after.items()
        )
        sampler.sample()
        check_counts(counter, server.auth, patients, directory_before, result)
        result.peak_rss_kib = sampler.peak.rss_kib
        result.peak_hwm_kib = sampler.peak.hwm_kib
        result.database_bytes = (
            folder_size(sqlite_folder) if sqlite_folder else postgres_size(database_url)
        )
        if result.errors:
            console.print(f"[yellow]server log tail:[/yellow]\n{server.log_tail(10)}")
    return result


def check_counts(
    client: httpx.Client,
    auth: httpx.Auth,
    patient_bundles: list[BundleFile],
    directory_before: int,
    result: RunResult,
) -> None:
    """Count Patients, Provenance and the directory's growth; more Patients than distinct
    people (or fewer) is an error: person matching failed."""
    result.people = len(national_ids(patient_bundles))
    try:
        result.patients = count_resources(client, auth, "Patient")
        result.provenances = count_resources(client, auth, "Provenance")
        result.directory_added = directory_size(client, auth) - directory_before
    except (httpx.HTTPError, KeyError, ValueError) as error:
        result.note_error(f"counting resources after the run: {error!r}")
        return
    if result.patients != result.people:
        result.note_error(
            f"{result.patients} Patients for {result.people} distinct people: "
            "person matching made a copy or lost one"
        )


# Report


def _mib(kib_or_bytes: float, *, unit: int) -> str:
    return f"{kib_or_bytes / unit:,.0f}"


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def result_rows(results: list[RunResult]) -> list[list[str]]:
    rows = []
    for r in results:
        p = r.plan
        rows.append(
            [
                p.database,
                str(p.workers),
                str(p.clients),
                str(p.sources),
                str(p.generated),
                f"{r.provider_resources:,} in {r.provider_s:.1f} s",
                str(r.bundles),
                f"{r.resources:,}",
                f"{r.wall_s:.1f}",
                f"{r.resources_per_s:,.0f}",
                f"{r.percentile_ms(0.50):,.0f}",
                f"{r.percentile_ms(0.95):,.0f}",
                f"{r.server_cpu_s / r.wall_s * 100:.0f}%" if r.wall_s else "-",
                _count(r.patients),
                str(r.people),
                _count(r.provenances),
                _count(r.directory_added),
                str(r.errors),
                str(r.retries),
                _mib(r.peak_rss_kib, unit=1024),
                _mib(r.peak_hwm_kib, unit=1024),
                _mib(r.database_bytes, unit=1024 * 1024),
            ]
        )
    return rows


COLUMNS = [
    "database",
    "workers",
    "clients",
    "sources",
    "generated",
    "providers (resources, time)",
    "bundles",
    "resources",
    "seconds",
    "resources/s",
    "p50 ms",
    "p95 ms",
    "server CPU",
    "Patients",
    "people",
    "Provenance",
    "directory added",
    "errors",
    "retries",
    "peak RSS MiB",
    "sum HWM MiB",
    "DB MiB",
]


def print_table(results: list[RunResult], console: Console) -> None:
    table = Table(title="Ingest: Synthea transaction Bundles pushed over HTTP")
    for name in COLUMNS:
        table.add_column(name, justify="left" if name in ("database",) else "right")
    for row in result_rows(results):
        table.add_row(*row)
    console.print(table)
    for r in results:
        if r.first_error:
            p = r.plan
            console.print(
                f"[red]first error[/red] ({p.database}, workers {p.workers}, clients "
                f"{p.clients}, sources {p.sources}, generated {p.generated}): {r.first_error}"
            )


def markdown_table(results: list[RunResult]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in result_rows(results)]
    return "\n".join(lines)


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="sqlite")
    parser.add_argument("--workers", type=int, nargs="+", default=[1], help="uvicorn workers")
    parser.add_argument("--clients", type=int, nargs="+", default=[1], help="concurrent clients")
    parser.add_argument(
        "--sources",
        type=int,
        nargs="+",
        default=[4],
        help="backend clients of Organizations of their own (hospitals, GPs), each pushing "
        "every patient Bundle; the clients are spread over them round-robin",
    )
    parser.add_argument(
        "--lockstep",
        action="store_true",
        help="all sources push the Bundles in the same order, so for the same citizen at "
        "the same time (by default each source starts at its own place in the list)",
    )
    parser.add_argument(
        "--generated",
        type=int,
        nargs="+",
        default=[0],
        help="cloned patient Bundles posted after the real ones",
    )
    parser.add_argument("--shared-data", type=Path, default=DEFAULT_SHARED_DATA)
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES, help="admin connection URL")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated clones")
    parser.add_argument(
        "--provider-chunk",
        type=int,
        default=250,
        help="entries per provider batch request (the directory files hold 2,382 each)",
    )
    parser.add_argument(
        "--pg-analyze",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="ANALYZE the PostgreSQL database after each provider chunk (not needed since "
        "conditional lookups are token-first; see BENCHMARKS.md)",
    )
    parser.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    parser.add_argument(
        "--py-spy",
        type=Path,
        metavar="FILE",
        help="run the server under py-spy (pip install py-spy) and write its raw stacks "
        "to FILE (with several runs, FILE gets a run number); summarise with bench/stacks.py. "
        "Profiled figures are not benchmark figures: the sampler shares the cores",
    )
    arguments = parser.parse_args(argv)
    for name in ("workers", "clients", "sources", "generated"):
        values = getattr(arguments, name)
        low = 0 if name == "generated" else 1
        if any(v < low or v > 10_000 for v in values):
            parser.error(f"--{name} takes values from {low} to 10000")
    if arguments.provider_chunk < 1:
        parser.error("--provider-chunk must be at least 1")
    return arguments


def _interrupt(_signal: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    # `timeout` and `kill` send SIGTERM: unwind as for Ctrl-C, so that the server is
    # stopped and the benchmark database dropped.
    signal.signal(signal.SIGTERM, _interrupt)
    # Wide enough for the table when the output goes to a file or a pipe.
    console = Console(width=None if sys.stdout.isatty() else 220)
    databases = ["sqlite", "postgresql"] if arguments.database == "both" else [arguments.database]
    providers = [
        chunk
        for bundle in provider_bundles(arguments.shared_data)
        for chunk in split_batch(bundle, arguments.provider_chunk)
    ]
    real = load_real_bundles(arguments.shared_data)
    templates = patient_templates(real)
    clones = list(generated_bundles(templates, max(arguments.generated), seed=arguments.seed))
    console.print(
        f"{len(providers)} provider Bundles ({sum(b.entries for b in providers):,} entries), "
        f"{len(real)} real Bundles ({sum(b.entries for b in real):,} entries), "
        f"{len(clones)} clones of {len(templates)} patients"
    )
    results: list[RunResult] = []
    for database in databases:
        for workers in arguments.workers:
            for clients in arguments.clients:
                for sources in arguments.sources:
                    for generated in arguments.generated:
                        plan = RunPlan(database, workers, clients, generated, sources)
                        console.print(f"[bold]run[/bold] {plan}")
                        patients = real + clones[:generated]
                        profile = None
                        if arguments.py_spy is not None:
                            number = len(results)
                            stem = f"{arguments.py_spy.stem}-{number}"
                            profile = arguments.py_spy.with_stem(stem)
                            profile.parent.mkdir(parents=True, exist_ok=True)
                        result = run(
                            plan,
                            providers,
                            patients,
                            arguments.postgres_url,
                            console,
                            profile,
                            pg_analyze=arguments.pg_analyze,
                            lockstep=arguments.lockstep,
                        )
                        console.print(
                            f"  {result.resources:,} resources in {result.wall_s:.1f} s = "
                            f"{result.resources_per_s:,.0f}/s, {result.errors} errors"
                        )
                        results.append(result)
    print_table(results, console)
    if arguments.markdown:
        console.print(markdown_table(results), markup=False, highlight=False, soft_wrap=True)
    return 1 if any(r.errors for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
