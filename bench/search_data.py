"""The search benchmark's database: N patients loaded over HTTP, and what is known of them.

A database of N patients is the 2021 provider directory, then every real Synthea
transaction Bundle (16 patients, plus the 2019 set's directory Bundles), then N - 16
clones (`generate.py`), all POSTed to `/fhir` through a `health serve` of its own. The
facts the query mix needs (`queries.PatientFacts`) are read from each patient Bundle,
with the server's id of the Patient taken from the transaction response.

With a cache folder (`--reuse DIR`) a loaded database is kept and later copied instead
of loaded again: the SQLite file as DIR/<key>.db, a PostgreSQL database as the template
database `bench_search_cache_<key>`, and the facts as DIR/<key>.json. The key holds the
database, the patient count, the seed and a hash of the code and data that decide what is stored
(health/, fhir/, bench/generate.py, the Synthea file names), so any change loads anew.
Every run still works on a copy, dropped afterwards.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import shutil
import sqlite3
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
    clone_bundle,
    patient_templates,
    provider_bundles,
    real_bundles,
    split_batch,
)
from ingest import (
    ERROR_BODY_CHARS,
    HEADERS,
    LOOPBACK,
    REQUEST_TIMEOUT,
    RunPlan,
    RunResult,
    folder_size,
    load_providers,
    postgres_size,
)
from queries import PatientFacts, patient_facts
from rich.console import Console
from server import Server
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CACHE_DATABASE_PREFIX = "bench_search_cache_"
PROVIDER_CHUNK = 250
RETRIES = 3


@dataclass
class LoadReport:
    """How the database came to be: loaded now (with timings) or copied from the cache."""

    patients: int = 0
    resources: int = 0
    provider_resources: int = 0
    provider_s: float = 0.0
    patients_s: float = 0.0
    errors: int = 0
    first_error: str | None = None
    reused: bool = False
    database_bytes: int = 0

    @property
    def load_s(self) -> float:
        return self.provider_s + self.patients_s

    def note_error(self, message: str) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = message


@dataclass
class LoadedDatabase:
    database: str
    url: str
    facts: list[PatientFacts] = field(default_factory=list)
    report: LoadReport = field(default_factory=LoadReport)
    sqlite_folder: Path | None = None

    def size_bytes(self) -> int:
        if self.sqlite_folder is not None:
            return folder_size(self.sqlite_folder)
        return postgres_size(self.url)


@dataclass(frozen=True)
class LoadOptions:
    shared_data: Path
    postgres_admin_url: str
    seed: int
    workers: int
    clients: int
    reuse_dir: Path | None
    analyze: bool


# Databases


def _admin_engine(admin_url: str) -> Engine:
    url = make_url(admin_url)
    if url.host not in LOOPBACK:
        raise SystemExit(f"The benchmark only talks to this machine, not to {url.host}")
    return create_engine(url, isolation_level="AUTOCOMMIT")


def _postgres_exists(admin_url: str, name: str) -> bool:
    admin = _admin_engine(admin_url)
    try:
        with admin.connect() as connection:
            found = connection.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            ).first()
        return found is not None
    finally:
        admin.dispose()


def _postgres_create(admin_url: str, name: str, template: str | None = None) -> None:
    """Create a database, as a copy of `template` when given.

    PostgreSQL 15 copies a template through the WAL by default: 2.7 GB of WAL for the
    1,000-patient database, whose checkpoints then ran during the measured searches.
    FILE_COPY copies the files (with a checkpoint before and after), and a checkpoint
    afterwards leaves nothing of the copy to be written while the benchmark runs.
    """
    admin = _admin_engine(admin_url)
    try:
        with admin.connect() as connection:
            clause = ""
            if template:
                clause = f' TEMPLATE "{template}"'
                version = connection.execute(text("SHOW server_version_num")).scalar_one()
                if int(version) >= 150000:
                    clause += " STRATEGY FILE_COPY"
            connection.execute(text(f'CREATE DATABASE "{name}"{clause}'))
            connection.execute(text("CHECKPOINT"))
    finally:
        admin.dispose()


def _postgres_drop(admin_url: str, name: str) -> None:
    admin = _admin_engine(admin_url)
    try:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def drop_cache(admin_url: str, reuse_dir: Path) -> list[str]:
    """Remove every cached database (files and PostgreSQL templates); their names."""
    removed = []
    if reuse_dir.is_dir():
        for path in sorted(reuse_dir.glob("*.db")) + sorted(reuse_dir.glob("*.json")):
            path.unlink()
            removed.append(str(path))
    admin = _admin_engine(admin_url)
    try:
        with admin.connect() as connection:
            names = connection.execute(
                text("SELECT datname FROM pg_database WHERE datname LIKE :prefix"),
                {"prefix": f"{CACHE_DATABASE_PREFIX}%"},
            ).scalars()
            for name in list(names):
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                removed.append(name)
    finally:
        admin.dispose()
    return removed


def cache_key(patients: int, seed: int, shared_data: Path) -> str:
    """Patient count, seed and a hash of everything that decides the stored rows."""
    digest = hashlib.sha256()
    sources = [
        *sorted((PROJECT_ROOT / "health").rglob("*.py")),
        *sorted((PROJECT_ROOT / "fhir").rglob("*.json")),
        PROJECT_ROOT / "bench" / "generate.py",
    ]
    for path in sources:
        digest.update(str(path.relative_to(PROJECT_ROOT)).encode())
        digest.update(path.read_bytes())
    for path in sorted((shared_data / "synthea").rglob("*.json")):
        digest.update(f"{path.name}:{path.stat().st_size}".encode())
    return f"{patients}p_s{seed}_{digest.hexdigest()[:10]}"


def _analyze(url: str) -> None:
    """Statistics for the planner; on PostgreSQL also what its autovacuum does after a
    bulk load (since version 13 inserts alone start it): the visibility map, which
    index-only scans read, and the rows' hint bits, which the first reads of every page
    would otherwise set and write back while the benchmark measures."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            vacuum = "VACUUM " if connection.dialect.name == "postgresql" else ""
            connection.execute(text(f"{vacuum}ANALYZE"))
    finally:
        engine.dispose()


@contextlib.contextmanager
def loaded_database(
    database: str, patients: int, options: LoadOptions, console: Console
) -> Iterator[LoadedDatabase]:
    """A database of `patients` patients (loaded, or copied from the cache); dropped after."""
    # Server ids differ from one load to the next: the facts belong to one database.
    key = f"{database}_{cache_key(patients, options.seed, options.shared_data)}"
    facts_file = options.reuse_dir / f"{key}.json" if options.reuse_dir else None
    with contextlib.ExitStack() as stack:
        if database == "sqlite":
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="health-bench-")))
            loaded = LoadedDatabase(database, f"sqlite:///{folder / 'bench.db'}")
            loaded.sqlite_folder = folder
            cached = options.reuse_dir / f"{key}.db" if options.reuse_dir else None
            if cached is not None and cached.is_file() and facts_file and facts_file.is_file():
                shutil.copyfile(cached, folder / "bench.db")
                _reuse(loaded, facts_file, console)
            else:
                _load(loaded, patients, options, console)
                if cached is not None and facts_file is not None and not loaded.report.errors:
                    _checkpoint(folder / "bench.db")
                    cached.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(folder / "bench.db", cached)
                    _save_facts(loaded.facts, facts_file)
        else:
            name = f"bench_{uuid.uuid4().hex[:12]}"
            template = f"{CACHE_DATABASE_PREFIX}{key}"
            admin_url = options.postgres_admin_url
            url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
            loaded = LoadedDatabase(database, url)
            reuse = (
                facts_file is not None
                and facts_file.is_file()
                and _postgres_exists(admin_url, template)
            )
            _postgres_create(admin_url, name, template if reuse else None)
            stack.callback(_postgres_drop, admin_url, name)
            if reuse and facts_file is not None:
                _reuse(loaded, facts_file, console)
            else:
                _load(loaded, patients, options, console)
                if facts_file is not None and not loaded.report.errors:
                    _postgres_drop(admin_url, template)
                    _postgres_create(admin_url, template, name)
                    _save_facts(loaded.facts, facts_file)
        loaded.report.database_bytes = loaded.size_bytes()
        yield loaded


def _checkpoint(path: Path) -> None:
    """Fold the WAL into the database file, so that the file alone is the database."""
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()


def _save_facts(facts: list[PatientFacts], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps([f.to_json() for f in facts]))


def _reuse(loaded: LoadedDatabase, facts_file: Path, console: Console) -> None:
    loaded.facts = [PatientFacts.from_json(f) for f in orjson.loads(facts_file.read_bytes())]
    loaded.report.patients = len(loaded.facts)
    loaded.report.reused = True
    console.print(f"  reused the cached database of {len(loaded.facts):,} patients")


# Loading


def _load(loaded: LoadedDatabase, patients: int, options: LoadOptions, console: Console) -> None:
    """Load the directory and `patients` patients through a server of its own."""
    executable = Path(sys.executable).parent / "health"
    providers = [
        chunk
        for bundle in provider_bundles(options.shared_data)
        for chunk in split_batch(bundle, PROVIDER_CHUNK)
    ]
    real = real_bundles(options.shared_data)
    templates = patient_templates(real)
    real_patients = len(templates)
    if patients < real_patients:
        raise SystemExit(f"--patients must be at least {real_patients} (the real Synthea set)")
    with tempfile.TemporaryDirectory(prefix="health-log-") as log_folder:
        server = Server(executable, loaded.url, options.workers, Path(log_folder) / "load.log")
        with server.running():
            recorder = RunResult(RunPlan(loaded.database, options.workers, 1, 0))
            load_providers(server.base_url, server.auth, providers, recorder, None)
            report = loaded.report
            report.provider_resources = recorder.provider_resources
            report.provider_s = recorder.provider_s
            if recorder.first_error:
                report.note_error(recorder.first_error)
            started = time.perf_counter()
            _post_patients(
                server.base_url,
                server.auth,
                real,
                templates,
                patients - real_patients,
                options,
                loaded,
            )
            report.patients_s = time.perf_counter() - started
            if report.errors:
                console.print(f"[yellow]server log tail:[/yellow]\n{server.log_tail(10)}")
    if options.analyze:
        _analyze(loaded.url)
    loaded.report.patients = len(loaded.facts)


class _BundleSource:
    """The real Bundles, then the clones, handed out one at a time to loading threads.

    Clones are made on demand under the lock (their uuids come from one seeded
    generator, so the same seed gives the same clones), never all held in memory.
    """

    def __init__(
        self, real: list[BundleFile], templates: list[BundleFile], clones: int, seed: int
    ) -> None:
        self._real = list(real)
        self._templates = templates
        self._clones = clones
        self._made = 0
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def next(self) -> BundleFile | None:
        with self._lock:
            if self._real:
                return self._real.pop(0)
            if self._made >= self._clones:
                return None
            number = self._made
            self._made += 1
            template = self._templates[number % len(self._templates)]
            return clone_bundle(template, number, self._rng)


def _post_patients(
    base_url: str,
    auth: httpx.Auth,
    real: list[BundleFile],
    templates: list[BundleFile],
    clones: int,
    options: LoadOptions,
    loaded: LoadedDatabase,
) -> None:
    source = _BundleSource(real, templates, clones, options.seed)
    lock = threading.Lock()

    def client_loop() -> None:
        with httpx.Client(base_url=base_url, timeout=REQUEST_TIMEOUT, auth=auth) as client:
            while (bundle := source.next()) is not None:
                facts, accepted, error = _post_transaction(client, bundle)
                with lock:
                    loaded.report.resources += accepted
                    if facts is not None:
                        loaded.facts.append(facts)
                    if error:
                        loaded.report.note_error(error)

    threads = [threading.Thread(target=client_loop, daemon=True) for _ in range(options.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Threads finish in any order: sort for a reproducible query mix.
    loaded.facts.sort(key=lambda f: f.ssn)


def _post_transaction(
    client: httpx.Client, bundle: BundleFile
) -> tuple[PatientFacts | None, int, str | None]:
    """POST one transaction; the facts of its Patient (with the server's id), entries accepted.

    A transaction that lost a race on a conditional create (409, or 412 saying "retry")
    is sent again, at most RETRIES times, as bench/ingest.py does.
    """
    for attempt in range(RETRIES + 1):
        try:
            response = client.post("/fhir", content=bundle.body, headers=HEADERS)
        except httpx.HTTPError as error:
            return None, 0, f"{bundle.name}: {error!r}"
        retry = response.status_code == 409 or (
            response.status_code == 412 and "retry" in response.text
        )
        if not retry or attempt == RETRIES:
            break
    if not response.is_success:
        message = f"HTTP {response.status_code}: {response.text[:ERROR_BODY_CHARS]}"
        return None, 0, f"{bundle.name}: {message}"
    request_entries = orjson.loads(bundle.body).get("entry", [])
    response_entries = orjson.loads(response.content).get("entry", [])
    accepted = sum(
        1
        for e in response_entries
        if str((e.get("response") or {}).get("status", "")).startswith("2")
    )
    # https://hl7.org/fhir/R4/http.html#trules: response entries follow request order.
    for request_entry, response_entry in zip(request_entries, response_entries, strict=False):
        if (request_entry.get("resource") or {}).get("resourceType") == "Patient":
            location = str((response_entry.get("response") or {}).get("location", ""))
            parts = location.split("/")
            if len(parts) >= 2 and parts[0] == "Patient":
                bundle_json = {"entry": request_entries}
                return patient_facts(bundle_json, parts[1]), accepted, None
            return None, accepted, f"{bundle.name}: no Patient location in the response"
    return None, accepted, None
