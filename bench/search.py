"""Search benchmark: a fixed mix of clinicians' searches against N loaded patients.

For every database and patient count, this loads a database once (`search_data.py`:
the provider directory, the real Synthea patients and clones, over HTTP), then for
every worker count starts `health serve` on it and, for every client count, sends the
query mix (`queries.py`) from C concurrent clients for a fixed time, after a short
warm-up. Reported per query kind and overall: p50/p95 latency of the searches answered
2xx, searches/s, errors (non-2xx or no answer, with the first error body), the CPU
used, the load time and the database size. The clients hold bearer tokens of a backend
client registered on the database (bench/auth.py). All traffic goes to 127.0.0.1.

The clients share the machine with the server and the database, so they are kept
light: each holds one keep-alive HTTP/1.1 connection of the standard library's
http.client, which takes about a fifth of the CPU per request that httpx takes
(docs/BENCHMARKS.md, "A lighter load generator").

    .venv/bin/python bench/search.py --database both --patients 100 1000 \\
        --clients 1 4 --workers 1 2 --duration 20

See docs/BENCHMARKS.md ("Search") for the figures measured on the project's machine.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

import orjson
from auth import BearerTokens
from ingest import DEFAULT_POSTGRES, DEFAULT_SHARED_DATA, ERROR_BODY_CHARS
from queries import FLOOR_KINDS, QueryKind, QueryMix, query_kinds
from rich.console import Console
from rich.table import Table
from search_data import LoadedDatabase, LoadOptions, LoadReport, drop_cache, loaded_database
from server import MemorySampler, Server, cpu_seconds, process_tree

REQUEST_TIMEOUT_S = 30.0
ACCEPT = "application/fhir+json"
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
ALL = "all"
PATIENT_SCOPED = "patient-scoped"


@dataclass(frozen=True)
class SearchPlan:
    database: str
    patients: int
    workers: int
    clients: int


@dataclass(frozen=True)
class Outcome:
    """One request: which kind, how long, whether it was answered 2xx, entries returned."""

    kind: str
    latency_s: float
    ok: bool
    entries: int = 0
    error: str | None = None


@dataclass
class KindStats:
    name: str
    latencies_s: list[float] = field(default_factory=list)
    entries: int = 0
    errors: int = 0
    first_error: str | None = None

    def add(self, outcome: Outcome) -> None:
        if outcome.ok:
            self.latencies_s.append(outcome.latency_s)
            self.entries += outcome.entries
        else:
            self.errors += 1
            if self.first_error is None:
                self.first_error = outcome.error

    @property
    def searches(self) -> int:
        return len(self.latencies_s)

    def percentile_ms(self, fraction: float) -> float | None:
        if not self.latencies_s:
            return None
        if len(self.latencies_s) == 1:
            return self.latencies_s[0] * 1000
        cuts = statistics.quantiles(self.latencies_s, n=100, method="inclusive")
        return cuts[round(fraction * 100) - 1] * 1000


@dataclass
class SearchRun:
    plan: SearchPlan
    load: LoadReport
    query_kinds: tuple[QueryKind, ...]
    wall_s: float = 0.0
    kinds: dict[str, KindStats] = field(default_factory=dict)
    server_cpu_s: float = 0.0
    machine_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    peak_rss_kib: int = 0

    def rate(self, stats: KindStats) -> float:
        return stats.searches / self.wall_s if self.wall_s else 0.0

    def total(self, name: str, kinds: list[str]) -> KindStats:
        merged = KindStats(name)
        for kind in kinds:
            stats = self.kinds.get(kind)
            if stats is None:
                continue
            merged.latencies_s += stats.latencies_s
            merged.entries += stats.entries
            merged.errors += stats.errors
            merged.first_error = merged.first_error or stats.first_error
        return merged


# Sending the mix


def machine_busy_s() -> float:
    """CPU seconds all cores of the machine have spent busy (not idle, not iowait)."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields) - idle) / _CLOCK_TICKS


class Connection:
    """One client's keep-alive connection to the server under test, as the source whose
    bearer tokens it holds. A URL is the mix's, relative to the FHIR base, or a `next`
    link the server gave (absolute, on `base_url`)."""

    def __init__(self, base_url: str, tokens: BearerTokens) -> None:
        parts = urlsplit(base_url)
        self._base_url = base_url
        self._fhir_path = f"{parts.path}/fhir/"
        self._tokens = tokens
        self._http = http.client.HTTPConnection(
            parts.hostname or "127.0.0.1", parts.port, timeout=REQUEST_TIMEOUT_S
        )

    def get(self, url: str) -> tuple[int, bytes]:
        """The status and body of a GET; once more with a new token after a 401 (a token
        that expired early or was revoked), as BearerTokens does for httpx."""
        if url.startswith(f"{self._base_url}/"):
            path = url[len(self._base_url) :]
        else:
            path = self._fhir_path + url
        # As httpx sends it: what a URL may not carry (a space, a name's "ü") encoded,
        # the rest (and escapes already made) as it is.
        path = quote(path, safe="/?&=:|,$%+-._~*!'()[]@;")
        token = self._tokens.token()
        status, body = self._send(path, token)
        if status == 401:
            status, body = self._send(path, self._tokens.token(refused=token))
        return status, body

    def _send(self, path: str, token: str) -> tuple[int, bytes]:
        try:
            self._http.request(
                "GET", path, headers={"Accept": ACCEPT, "Authorization": f"Bearer {token}"}
            )
            response = self._http.getresponse()
            return response.status, response.read()
        except BaseException:
            self._http.close()  # the next request connects again
            raise

    def close(self) -> None:
        self._http.close()


def execute(
    connection: Connection, base_url: str, kind: str, url: str
) -> tuple[Outcome, str | None]:
    """GET one search; its outcome and the Bundle's `next` link (only if on this server)."""
    started = time.perf_counter()
    try:
        status, body = connection.get(url)
    except (http.client.HTTPException, OSError) as error:
        return Outcome(kind, time.perf_counter() - started, False, error=f"{url}: {error!r}"), None
    latency = time.perf_counter() - started
    if not 200 <= status < 300:
        text = body.decode(errors="replace")[:ERROR_BODY_CHARS]
        error = f"{url}: HTTP {status}: {text}"
        return Outcome(kind, latency, False, error=error), None
    bundle = orjson.loads(body)
    next_url = next(
        (link.get("url") for link in bundle.get("link", []) if link.get("relation") == "next"),
        None,
    )
    # Follow only links back to the server under test: never anywhere else.
    if next_url is not None and not str(next_url).startswith(f"{base_url}/"):
        return Outcome(kind, latency, False, error=f"{url}: next link {next_url!r}"), None
    return Outcome(kind, latency, True, entries=len(bundle.get("entry", []))), next_url


def send_mix(
    base_url: str, auth: BearerTokens, mix: QueryMix, clients: int, duration_s: float, seed: int
) -> tuple[list[Outcome], float]:
    """Every client sends its stream until the deadline; the outcomes and the wall time."""
    outcomes: list[list[Outcome]] = [[] for _ in range(clients)]
    started = time.perf_counter()
    deadline = started + duration_s

    def client_loop(number: int) -> None:
        mine = outcomes[number]
        stream = mix.stream(number, seed)
        connection = Connection(base_url, auth)
        try:
            while time.perf_counter() < deadline:
                planned = next(stream)
                outcome, next_url = execute(connection, base_url, planned.kind.name, planned.url)
                mine.append(outcome)
                if planned.kind.follow_next and next_url and time.perf_counter() < deadline:
                    page, _ = execute(connection, base_url, planned.kind.next_page_name, next_url)
                    mine.append(page)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=client_loop, args=(n,), name=f"client-{n}", daemon=True)
        for n in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        # A request takes at most REQUEST_TIMEOUT_S: the join is bounded by it.
        thread.join()
    return [o for mine in outcomes for o in mine], time.perf_counter() - started


def kind_names(kinds: tuple[QueryKind, ...]) -> list[str]:
    names = []
    for kind in kinds:
        names.append(kind.name)
        if kind.follow_next:
            names.append(kind.next_page_name)
    return names


def measure(
    server: Server, mix: QueryMix, plan: SearchPlan, load: LoadReport, arguments: argparse.Namespace
) -> SearchRun:
    """Warm up, then send the mix for the measured duration and sum up what happened."""
    if arguments.warmup > 0:
        send_mix(
            server.base_url, server.auth, mix, plan.clients, arguments.warmup, arguments.seed + 1
        )
    run = SearchRun(plan, load, mix.kinds)
    run.kinds = {name: KindStats(name) for name in kind_names(mix.kinds)}
    with MemorySampler(server.pid) as sampler:
        cpu_before = cpu_seconds(process_tree(server.pid))
        machine_before, client_before = machine_busy_s(), time.process_time()
        outcomes, run.wall_s = send_mix(
            server.base_url, server.auth, mix, plan.clients, arguments.duration, arguments.seed
        )
        run.client_cpu_s = time.process_time() - client_before
        run.machine_cpu_s = machine_busy_s() - machine_before
        cpu_after = cpu_seconds(process_tree(server.pid))
    run.server_cpu_s = sum(used - cpu_before.get(pid, 0.0) for pid, used in cpu_after.items())
    run.peak_rss_kib = sampler.peak.rss_kib
    for outcome in outcomes:
        run.kinds[outcome.kind].add(outcome)
    return run


# Report


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _share(cpu_s: float, wall_s: float) -> str:
    return f"{cpu_s / wall_s * 100:.0f}%" if wall_s else "-"


SUMMARY_COLUMNS = [
    "database",
    "patients",
    "workers",
    "clients",
    "searches",
    "searches/s",
    "p50 ms",
    "p95 ms",
    "patient-scoped p95 ms",
    "errors",
    "server CPU",
    "machine CPU",
    "client CPU",
    "peak RSS MiB",
    "load s",
    "DB MiB",
]


def summary_rows(runs: list[SearchRun]) -> list[list[str]]:
    rows = []
    for run in runs:
        p = run.plan
        kinds = run.query_kinds
        overall = run.total(ALL, list(run.kinds))
        scoped = run.total(PATIENT_SCOPED, [k.name for k in kinds if k.patient_scoped])
        load = "reused" if run.load.reused else f"{run.load.load_s:,.0f}"
        rows.append(
            [
                p.database,
                f"{p.patients:,}",
                str(p.workers),
                str(p.clients),
                f"{overall.searches:,}",
                f"{run.rate(overall):,.0f}",
                _ms(overall.percentile_ms(0.50)),
                _ms(overall.percentile_ms(0.95)),
                _ms(scoped.percentile_ms(0.95)),
                f"{overall.errors:,}",
                _share(run.server_cpu_s, run.wall_s),
                _share(run.machine_cpu_s, run.wall_s),
                _share(run.client_cpu_s, run.wall_s),
                f"{run.peak_rss_kib / 1024:,.0f}",
                load,
                f"{run.load.database_bytes / 1024 / 1024:,.0f}",
            ]
        )
    return rows


DETAIL_COLUMNS = ["query", "searches", "searches/s", "p50 ms", "p95 ms", "entries/search", "errors"]


def detail_rows(run: SearchRun) -> list[list[str]]:
    kinds = run.query_kinds
    scoped = run.total(PATIENT_SCOPED, [k.name for k in kinds if k.patient_scoped])
    every = [*run.kinds.values(), scoped, run.total(ALL, list(run.kinds))]
    return [
        [
            s.name,
            f"{s.searches:,}",
            f"{run.rate(s):,.1f}",
            _ms(s.percentile_ms(0.50)),
            _ms(s.percentile_ms(0.95)),
            f"{s.entries / s.searches:,.1f}" if s.searches else "-",
            f"{s.errors:,}",
        ]
        for s in every
    ]


def _label(plan: SearchPlan) -> str:
    return (
        f"{plan.database}, {plan.patients:,} patients, {plan.workers} worker(s), "
        f"{plan.clients} client(s)"
    )


def print_run(run: SearchRun, console: Console) -> None:
    table = Table(title=f"Search: {_label(run.plan)}, {run.wall_s:.1f} s")
    for i, name in enumerate(DETAIL_COLUMNS):
        table.add_column(name, justify="left" if i == 0 else "right")
    for row in detail_rows(run):
        table.add_row(*row)
    console.print(table)
    for stats in run.kinds.values():
        if stats.first_error:
            console.print(
                f"[red]first error[/red] ({stats.name}): {stats.first_error}",
                markup=True,
                highlight=False,
            )


def print_mix(mix: QueryMix, console: Console) -> None:
    table = Table(title="Query mix (each client sends the kinds in turn)")
    for name in ("query", "template", "notes"):
        table.add_column(name)
    for row in mix.describe():
        table.add_row(*row)
    console.print(table)
    console.print(f"common LOINC codes (code across patients): {', '.join(mix.common_codes)}")


def markdown(columns: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def print_table(
    title: str, columns: list[str], rows: list[list[str]], *, as_markdown: bool
) -> None:
    """`rows` as a table on the terminal, the first column to the left and the rest to
    the right; then as markdown too (for docs/BENCHMARKS.md) if `as_markdown`."""
    table = Table(title=title)
    for number, column in enumerate(columns):
        table.add_column(column, justify="left" if number == 0 else "right")
    for row in rows:
        table.add_row(*row)
    Console().print(table)
    if as_markdown:
        print(markdown(columns, rows))


# Command line


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="sqlite")
    parser.add_argument("--patients", type=int, nargs="+", default=[100])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--workers", type=int, nargs="+", default=[1], help="uvicorn workers")
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds first")
    parser.add_argument("--seed", type=int, default=1, help="seed of the clones and the mix")
    parser.add_argument("--load-workers", type=int, default=2)
    parser.add_argument("--load-clients", type=int, default=4)
    parser.add_argument(
        "--analyze",
        choices=["postgresql", "all", "none"],
        default="postgresql",
        help="run ANALYZE after loading, VACUUM ANALYZE on PostgreSQL (its autovacuum "
        "would do it within a minute of a bulk load; nothing does it for SQLite)",
    )
    parser.add_argument(
        "--reuse",
        type=Path,
        metavar="DIR",
        help="keep loaded databases (SQLite files and facts in DIR, PostgreSQL template "
        "databases) and copy them on later runs with the same code and data",
    )
    parser.add_argument(
        "--drop-cache", action="store_true", help="remove what --reuse kept, then exit"
    )
    parser.add_argument("--shared-data", type=Path, default=DEFAULT_SHARED_DATA)
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES, help="admin connection URL")
    parser.add_argument("--markdown", action="store_true", help="also print Markdown tables")
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="KIND",
        help="send only these kinds, by name: of the mix, or the floor under it "
        "('capability statement', 'read patient')",
    )
    parser.add_argument(
        "--py-spy",
        type=Path,
        metavar="FILE",
        help="run each search server under py-spy and write its raw stacks to FILE with "
        "the database, patients and workers in the name; summarise with bench/stacks.py "
        "--within _search. Profiled figures are not benchmark figures",
    )
    parser.add_argument(
        "--py-spy-gil",
        action="store_true",
        help="with --py-spy, sample only threads that hold the interpreter: where the "
        "server's Python spends CPU, without waits for the database (bench/stacks.py "
        "--tree _search shows what a search calls)",
    )
    arguments = parser.parse_args(argv)
    for name in ("patients", "clients", "workers"):
        if any(v < 1 or v > 100_000 for v in getattr(arguments, name)):
            parser.error(f"--{name} takes values from 1 to 100000")
    known = [kind.name for kind in (*query_kinds(""), *FLOOR_KINDS)]
    if arguments.only and not set(arguments.only) <= set(known):
        parser.error(f"--only takes kinds by name: {', '.join(map(repr, known))}")
    if not 0 < arguments.duration <= 3_600 or not 0 <= arguments.warmup <= 600:
        parser.error("--duration takes (0, 3600] seconds and --warmup [0, 600]")
    return arguments


def _interrupt(_signal: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    # `timeout` and `kill` send SIGTERM: unwind as for Ctrl-C, so that servers are
    # stopped and databases dropped.
    signal.signal(signal.SIGTERM, _interrupt)
    console = Console(width=None if sys.stdout.isatty() else 200)
    if arguments.drop_cache:
        directory = arguments.reuse or Path(tempfile.gettempdir()) / "health-bench-search"
        for name in drop_cache(arguments.postgres_url, directory):
            console.print(f"removed {name}")
        return 0
    databases = ["sqlite", "postgresql"] if arguments.database == "both" else [arguments.database]
    executable = Path(sys.executable).parent / "health"
    runs: list[SearchRun] = []
    for database in databases:
        for patients in arguments.patients:
            options = LoadOptions(
                shared_data=arguments.shared_data,
                postgres_admin_url=arguments.postgres_url,
                seed=arguments.seed,
                workers=arguments.load_workers,
                clients=arguments.load_clients,
                reuse_dir=arguments.reuse,
                analyze=arguments.analyze == "all"
                or (arguments.analyze == "postgresql" and database == "postgresql"),
            )
            console.print(f"[bold]load[/bold] {database}, {patients:,} patients")
            with loaded_database(database, patients, options, console) as loaded:
                report = loaded.report
                console.print(
                    f"  {report.patients:,} patients, {report.resources:,} resources in "
                    f"{report.patients_s:.0f} s (directory {report.provider_s:.0f} s), "
                    f"{report.database_bytes / 1024 / 1024:,.0f} MiB, {report.errors} errors"
                    + (f"; first: {report.first_error}" if report.first_error else "")
                )
                mix = QueryMix(loaded.facts, arguments.only)
                print_mix(mix, console)
                runs += run_servers(loaded, mix, executable, arguments, console)
    table = Table(title="Search: summary")
    for i, name in enumerate(SUMMARY_COLUMNS):
        table.add_column(name, justify="left" if i == 0 else "right")
    for row in summary_rows(runs):
        table.add_row(*row)
    console.print(table)
    if arguments.markdown:
        text = [markdown(SUMMARY_COLUMNS, summary_rows(runs))]
        for run in runs:
            text += [f"\n{_label(run.plan)}:\n", markdown(DETAIL_COLUMNS, detail_rows(run))]
        console.print("\n".join(text), markup=False, highlight=False, soft_wrap=True)
    return 1 if any(s.errors for run in runs for s in run.kinds.values()) else 0


def run_servers(
    loaded: LoadedDatabase,
    mix: QueryMix,
    executable: Path,
    arguments: argparse.Namespace,
    console: Console,
) -> list[SearchRun]:
    """For every worker count a server on the loaded database, and every client count."""
    runs = []
    for workers in arguments.workers:
        with contextlib.ExitStack() as stack:
            logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="health-log-")))
            profile = None
            if arguments.py_spy is not None:
                run_name = f"{loaded.database}-{loaded.report.patients}-w{workers}"
                profile = arguments.py_spy.with_stem(f"{arguments.py_spy.stem}-{run_name}")
                profile.parent.mkdir(parents=True, exist_ok=True)
            server = Server(
                executable,
                loaded.url,
                workers,
                logs / "server.log",
                py_spy_output=profile,
                py_spy_gil=arguments.py_spy_gil,
            )
            stack.enter_context(server.running())
            for clients in arguments.clients:
                plan = SearchPlan(loaded.database, loaded.report.patients, workers, clients)
                console.print(f"[bold]run[/bold] {_label(plan)}")
                run = measure(server, mix, plan, loaded.report, arguments)
                print_run(run, console)
                runs.append(run)
    return runs


if __name__ == "__main__":
    raise SystemExit(main())
