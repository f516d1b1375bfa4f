"""Ingest benchmark: Synthea transaction Bundles POSTed over HTTP to a fresh server.

For every combination of database, worker count, client count and generated-bundle
count, this starts `health serve` on a new database (a temporary SQLite file, or a new
PostgreSQL database that is dropped afterwards), loads the 2021 provider directory
(batch Bundles with conditional creates), then POSTs every patient Bundle from C
concurrent clients and measures resources/s, per-Bundle latency and the server's
memory. The clients act as one registered backend client with bearer tokens from the
server's token endpoint (bench/auth.py). All traffic goes to 127.0.0.1.

    .venv/bin/python bench/ingest.py --database both --workers 1 2 --clients 1 4 \\
        --generated 0 60

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
    """One measured run: which database, how many workers, clients and clones."""

    database: str
    workers: int
    clients: int
    generated: int


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


def post_bundle(client: httpx.Client, bundle: BundleFile) -> Posted:
    """POST one Bundle; entries whose response status is 2xx count as accepted.

    A transaction that lost a race on a conditional create (409, or 412 saying "retry")
    is sent again, at most RETRIES times, as a client should; latency includes retries.
    """
    started = time.perf_counter()
    retries = 0
    while True:
        try:
            response = client.post("/fhir", content=bundle.body, headers=HEADERS)
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


def post_all(
    base_url: str, auth: httpx.Auth, bundles: list[BundleFile], clients: int, result: RunResult
) -> None:
    """POST every Bundle once from `clients` threads, each with its own connection."""
    work: queue.Queue[BundleFile] = queue.Queue()
    for bundle in bundles:
        work.put(bundle)
    lock = threading.Lock()

    def client_loop() -> None:
        with httpx.Client(base_url=base_url, timeout=REQUEST_TIMEOUT, auth=auth) as client:
            while True:
                try:
                    bundle = work.get_nowait()
                except queue.Empty:
                    return
                posted = post_bundle(client, bundle)
                with lock:
                    result.bundles += 1
                    result.resources += posted.accepted
                    result.latencies_s.append(posted.latency_s)
                    result.retries += posted.retries
                    if posted.error:
                        result.note_error(posted.error)

    threads = [
        threading.Thread(target=client_loop, name=f"client-{i}", daemon=True)
        for i in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


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
        with httpx.Client(base_url=base_url, timeout=REQUEST_TIMEOUT, auth=auth) as client:
            for bundle in providers:
                posted = post_bundle(client, bundle)
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
        )
        stack.enter_context(server.running())
        sampler = stack.enter_context(MemorySampler(server.pid))
        analyze = database_url if plan.database == "postgresql" and pg_analyze else None
        load_providers(server.base_url, server.auth, providers, result, analyze)
        cpu_before = cpu_seconds(process_tree(server.pid))
        started = time.perf_counter()
        post_all(server.base_url, server.auth, patients, plan.clients, result)
        result.wall_s = time.perf_counter() - started
        cpu_after = cpu_seconds(process_tree(server.pid))
        result.server_cpu_s = sum(
            used - cpu_before.get(pid, 0.0) for pid, used in cpu_after.items()
        )
        sampler.sample()
        result.peak_rss_kib = sampler.peak.rss_kib
        result.peak_hwm_kib = sampler.peak.hwm_kib
        result.database_bytes = (
            folder_size(sqlite_folder) if sqlite_folder else postgres_size(database_url)
        )
        if result.errors:
            console.print(f"[yellow]server log tail:[/yellow]\n{server.log_tail(10)}")
    return result


# Report


def _mib(kib_or_bytes: float, *, unit: int) -> str:
    return f"{kib_or_bytes / unit:,.0f}"


def result_rows(results: list[RunResult]) -> list[list[str]]:
    rows = []
    for r in results:
        p = r.plan
        rows.append(
            [
                p.database,
                str(p.workers),
                str(p.clients),
                str(p.generated),
                f"{r.provider_resources:,} in {r.provider_s:.1f} s",
                str(r.bundles),
                f"{r.resources:,}",
                f"{r.wall_s:.1f}",
                f"{r.resources_per_s:,.0f}",
                f"{r.percentile_ms(0.50):,.0f}",
                f"{r.percentile_ms(0.95):,.0f}",
                f"{r.server_cpu_s / r.wall_s * 100:.0f}%" if r.wall_s else "-",
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
    "generated",
    "providers (resources, time)",
    "bundles",
    "resources",
    "seconds",
    "resources/s",
    "p50 ms",
    "p95 ms",
    "server CPU",
    "errors",
    "retries",
    "peak RSS MiB",
    "sum HWM MiB",
    "DB MiB",
]


def print_table(results: list[RunResult], console: Console) -> None:
    table = Table(title="Ingest: Synthea transaction Bundles over HTTP")
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
                f"{p.clients}, generated {p.generated}): {r.first_error}"
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
    for name in ("workers", "clients", "generated"):
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
                for generated in arguments.generated:
                    plan = RunPlan(database, workers, clients, generated)
                    console.print(f"[bold]run[/bold] {plan}")
                    patients = real + clones[:generated]
                    profile = None
                    if arguments.py_spy is not None:
                        number = len(results)
                        profile = arguments.py_spy.with_stem(f"{arguments.py_spy.stem}-{number}")
                        profile.parent.mkdir(parents=True, exist_ok=True)
                    result = run(
                        plan,
                        providers,
                        patients,
                        arguments.postgres_url,
                        console,
                        profile,
                        pg_analyze=arguments.pg_analyze,
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
