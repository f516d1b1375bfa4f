"""The `health` command: serve, demo, migrate, reindex, import; clients and apps of the API."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import typer
import uvicorn

from health import request_log
from health.auth.backend_client import (
    DEFAULT_SCOPE,
    BackendKey,
    TokenRequestError,
    request_token,
    token_endpoint,
)
from health.auth.clients import ClientStore
from health.auth.discovery import endpoints
from health.auth.registration import (
    DEFAULT_APP_SCOPE,
    RegistrationError,
    register_app,
    register_backend_client,
)
from health.db.engine import Database
from health.db.migrate import current_revision, upgrade_to_head
from health.fhir.config import FhirConfig
from health.fhir.resource_types import ResourceTypes
from health.seed import PersonRole, demo_clients, demo_persons, seed_demo_world
from health.settings import Settings

app = typer.Typer(
    help="One health record per citizen: FHIR R4 server and citizen portal.", no_args_is_help=True
)
clients_app = typer.Typer(
    help="Backend clients (SMART Backend Services): hospital and GP systems, and all "
    "registered clients.",
    no_args_is_help=True,
)
apps_app = typer.Typer(help="SMART apps: clinicians' and citizens' apps.", no_args_is_help=True)
audit_app = typer.Typer(
    help="The access log: check its hash chain, report emergency access.", no_args_is_help=True
)
app.add_typer(clients_app, name="clients")
app.add_typer(apps_app, name="apps")
app.add_typer(audit_app, name="audit")


def _default_base_url(host: str, port: int) -> None:
    """Without HEALTH_BASE_URL, links and Location headers name the address served.

    Set in the environment so that uvicorn's worker processes read the same value.
    """
    if not os.environ.get("HEALTH_BASE_URL"):
        shown = "localhost" if host in ("127.0.0.1", "0.0.0.0", "::") else host
        os.environ["HEALTH_BASE_URL"] = f"http://{shown}:{port}"


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    workers: int = typer.Option(1, help="Worker processes (PostgreSQL: one per core)."),
    request_log_on: bool = typer.Option(
        False,
        "--request-log",
        help="Log each HTTP request's method, path and status to stdout, without its "
        "query string (which can hold national IDs). Who read what is always in the "
        "access log the citizen sees.",
    ),
) -> None:
    """Serve the FHIR API (migrating the database to the current schema first)."""
    _default_base_url(host, port)
    settings = Settings()
    database = Database.of(settings)
    upgrade_to_head(database.write_engine)
    database.dispose()
    uvicorn.run(
        "health.asgi:app",
        host=host,
        port=port,
        workers=workers,
        factory=False,
        log_level="info",
        log_config=request_log.log_config(),
        access_log=request_log_on,
    )


@app.command()
def demo(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
) -> None:
    """Load the demo world (once), then serve with the embedded SQLite database."""
    _default_base_url(host, port)
    settings = Settings()
    database = Database.of(settings)
    upgrade_to_head(database.write_engine)
    summary = seed_demo_world(database, FhirConfig.load(settings))
    database.dispose()
    if summary.pushes_loaded:
        typer.echo(
            f"Demo world loaded: {summary.citizens} citizens, {summary.total} resources"
            f" in {summary.pushes_loaded} pushes from the demo organisations"
        )
    else:
        typer.echo(f"Demo world already loaded ({summary.citizens} citizens)")
    if summary.clients_registered:
        typer.echo(f"Registered {summary.clients_registered} demo backend clients")
    for line in demo_instructions(settings):
        typer.echo(line)
    serve(host=host, port=port, workers=1, request_log_on=False)


def demo_instructions(settings: Settings) -> list[str]:
    """What `health demo` says before serving: where things are, and who to be."""
    lines = [f"Demo: FHIR API at {settings.fhir_base_url} (database {settings.database_url})"]
    lines.append("Some test persons (CPR numbers for the development eID):")
    persons = demo_persons()
    for role in PersonRole:
        for person in [p for p in persons if p.role is role][:2]:
            lines.append(f"  {person.national_id}  {person.name} ({person.role})")
    lines.append(f"Citizen portal at {settings.base_url}/portal/ (log in as a test person)")
    if settings.dev_eid:
        lines.append(f"Development eID (log in as a test person) at {settings.dev_eid_issuer}")
    lines.append(f"Token endpoint (SMART Backend Services): {endpoints(settings)['token']}")
    lines.append(
        "Backend clients of the demo organisations (ES384 keys, public: production refuses them):"
    )
    clients = demo_clients()
    for client in clients:
        name, key = client.organisation.name, _shown_path(client.key_path)
        lines.append(f"  {client.client_id:<18} {name:<24} {key}")
    example = clients[0]
    command = sys.argv[0] if Path(sys.argv[0]).name == "health" else "health"
    options = f"--key {_shown_path(example.key_path)}"
    # Another shell may not have this HEALTH_BASE_URL: name the server unless it is the default.
    if settings.base_url != Settings.model_fields["base_url"].default:
        options += f" --fhir-base-url {settings.fhir_base_url}"
    lines.append(
        "Get a token as one (a client assertion signed with its key, iss = sub = client_id, "
        "aud = the token endpoint, traded by grant_type=client_credentials), then call the API:"
    )
    lines.append(
        f"  TOKEN=$({command} clients token {example.client_id} {options}) && "
        f'curl -H "Authorization: Bearer $TOKEN" {settings.fhir_base_url}/Organization'
    )
    return lines


@app.command()
def reindex(
    resource_type: str = typer.Option(None, "--type", help="Only this resource type."),
) -> None:
    """Rebuild the search index (after the search parameter definitions change)."""
    from rich.progress import Progress

    from health.fhir.reindex import reindex as rebuild

    settings = Settings()
    database = Database.of(settings)
    upgrade_to_head(database.write_engine)
    with Progress(transient=True) as progress:
        task = progress.add_task("Reindexing", total=None)
        counts = rebuild(
            database,
            FhirConfig.load(settings),
            resource_type=resource_type,
            progress=lambda done: progress.advance(task, done),
        )
    database.dispose()
    total = sum(counts.values())
    typer.echo(
        f"Reindexed {total} resources" + "".join(f"\n  {t}: {n}" for t, n in sorted(counts.items()))
    )


@app.command("import")
def import_files(
    paths: list[Path] = typer.Argument(..., help="Files and folders of Bundles and NDJSON."),
    source: str = typer.Option(
        ..., help="The source Organization's identifier, SYSTEM|VALUE: what it pushed."
    ),
) -> None:
    """Load Bundles and NDJSON as a source pushes them (matching, provenance, dedup).

    Files already imported for that source (by content) are skipped, so an interrupted
    import can be run again. Ends with resources by type and every refused entry.
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from health.ingest.bulk import Importer, ImportRefused, find_files, find_source

    settings = Settings()
    database = _migrated_database(settings)
    config = FhirConfig.load(settings)
    try:
        files = find_files(paths)
        actor = find_source(database, config, source)
    except ImportRefused as error:
        database.dispose()
        raise _fail(str(error)) from None
    total = sum(path.stat().st_size for path in files)
    columns = (TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=True) as progress:
        task = progress.add_task(f"Importing {len(files)} files", total=total)
        summary = Importer(database, config, actor).run(
            files, progress=lambda _path, size: progress.advance(task, size)
        )
    database.dispose()
    typer.echo(
        f"Imported {summary.files_imported} files as {actor.display.removeprefix('import as ')}"
        f" ({summary.files_skipped} already imported, skipped)"
    )
    for resource_type, count in sorted(summary.resources.items()):
        typer.echo(f"  {resource_type}: {count}")
    if summary.rejected:
        typer.echo(f"Refused ({len(summary.rejected)}):")
        for refused in summary.rejected:
            typer.echo(f"  {refused.path} {refused.position}: {refused.reason}")


@app.command()
def migrate() -> None:
    """Bring the database to the current schema."""
    settings = Settings()
    database = Database.of(settings)
    upgrade_to_head(database.write_engine)
    typer.echo(f"Database at revision {current_revision(database.write_engine)}")
    database.dispose()


# Clients and apps


def _shown_path(path: Path) -> str:
    """A path relative to the working folder when it is inside it, else absolute."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"Error: {message}", err=True)
    return typer.Exit(1)


def _migrated_database(settings: Settings) -> Database:
    database = Database.of(settings)
    upgrade_to_head(database.write_engine)
    return database


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError) as error:
        raise _fail(f"{path} is not a readable JSON file ({error})") from None


@clients_app.command("add")
def clients_add(
    name: str = typer.Option(..., help="What the client is, e.g. 'Nordhavn Hospital EPJ'."),
    organization_identifier: str = typer.Option(
        ...,
        metavar="SYSTEM|VALUE",
        help="The Organization the client acts for, by identifier (created if none has it).",
    ),
    jwks_file: Path = typer.Option(
        ...,
        exists=True,
        dir_okay=False,
        readable=True,
        help="The client's public keys as a JWK Set (RSA 2048+ bits or EC P-384, each with a kid).",
    ),
    scope: str = typer.Option(
        ..., help="Space-separated system/ scopes, e.g. 'system/*.cruds' or 'system/Patient.rs'."
    ),
    organization_name: str | None = typer.Option(
        None, help="The name of the Organization, if it is created (default: --name)."
    ),
    auditor: bool = typer.Option(
        False,
        "--auditor",
        help="An auditor's client (e.g. a data protection officer): it reads the access log "
        "as AuditEvent and no patient data; --scope must be system/AuditEvent.rs.",
    ),
) -> None:
    """Register a backend client (SMART Backend Services, private_key_jwt); print it as JSON."""
    jwks = _read_json(jwks_file)
    settings = Settings()
    database = _migrated_database(settings)
    try:
        with database.session(write=True) as session:
            registration = register_backend_client(
                session,
                FhirConfig.load(settings),
                name=name,
                organization_identifier=organization_identifier,
                organization_name=organization_name,
                jwks=jwks,
                scope=scope,
                auditor=auditor,
            )
    except RegistrationError as error:
        raise _fail(str(error)) from None
    finally:
        database.dispose()
    shown = {**registration.as_json(), "token_endpoint": endpoints(settings)["token"]}
    typer.echo(json.dumps(shown, indent=2))


@clients_app.command("list")
def clients_list(
    as_json: bool = typer.Option(
        False, "--json", help="JSON lines (the default when not printing to a terminal)."
    ),
) -> None:
    """List every registered client, backend clients and apps (never keys or secrets)."""
    settings = Settings()
    database = _migrated_database(settings)
    try:
        with database.session(write=False) as session:
            clients = ClientStore(session).list()
    finally:
        database.dispose()
    if as_json or not sys.stdout.isatty():
        for client in clients:
            typer.echo(json.dumps(client.as_json()))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("client_id", "kind", "name", "organization", "scope", "demo", "created")
    for client in clients:
        table.add_row(
            client.client_id,
            client.kind.value,
            client.name,
            client.organization_identifier or ", ".join(client.redirect_uris),
            client.scope,
            "yes" if client.demo else "",
            client.created_at.isoformat(timespec="seconds"),
        )
    Console().print(table)


@clients_app.command("remove")
def clients_remove(client_id: str = typer.Argument(..., help="The client to unregister.")) -> None:
    """Unregister a client (backend client or app); every token it holds stops working."""
    settings = Settings()
    database = _migrated_database(settings)
    try:
        with database.session(write=True) as session:
            removed = ClientStore(session).remove(client_id)
    finally:
        database.dispose()
    if not removed:
        raise _fail(f"No client {client_id!r} is registered")
    typer.echo(f"Removed client {client_id}")


@clients_app.command("token")
def clients_token(
    client_id: str = typer.Argument(..., help="The backend client's client_id."),
    key: Path = typer.Option(
        ..., exists=True, dir_okay=False, readable=True, help="Its private key (PEM)."
    ),
    scope: str = typer.Option(DEFAULT_SCOPE, help="The scopes to ask for."),
    fhir_base_url: str | None = typer.Option(
        None, help="The server's FHIR base URL (default: <HEALTH_BASE_URL>/fhir)."
    ),
) -> None:
    """Get an access token as a backend client, over HTTP, as any SMART client would; print it."""
    try:
        backend_key = BackendKey.from_file(key)
    except ValueError as error:
        raise _fail(f"{key}: {error}") from None
    base = fhir_base_url or Settings().fhir_base_url
    try:
        with httpx.Client(timeout=30.0) as http:
            issued = request_token(
                http, token_endpoint(http, base), client_id, backend_key, scope=scope
            )
    except TokenRequestError as error:
        raise _fail(str(error)) from None
    typer.echo(issued.access_token)


@apps_app.command("add")
def apps_add(
    name: str = typer.Option(..., help="What the app is called (shown to the user)."),
    redirect_uri: list[str] = typer.Option(
        ..., help="A redirect URI of the app (repeat for several): https, or http to localhost."
    ),
    public: bool = typer.Option(
        False,
        "--public",
        help="A public app (in a browser or on a device): PKCE only, no secret. "
        "Otherwise confidential, with a client secret printed once.",
    ),
    scope: str = typer.Option(DEFAULT_APP_SCOPE, help="The scopes the app may ask for."),
) -> None:
    """Register a SMART app; print its client_id (and client_secret, once) as JSON."""
    settings = Settings()
    database = _migrated_database(settings)
    try:
        with database.session(write=True) as session:
            client, secret = register_app(
                session,
                ResourceTypes(settings.conformance_dir),
                name=name,
                redirect_uris=redirect_uri,
                public=public,
                scope=scope,
            )
    except RegistrationError as error:
        raise _fail(str(error)) from None
    finally:
        database.dispose()
    shown: dict[str, Any] = {"client_id": client.client_id}
    if secret is not None:
        shown["client_secret"] = secret
    shown.update(
        name=client.name,
        public=not client.confidential,
        redirect_uris=list(client.redirect_uris),
        scope=client.scope,
    )
    typer.echo(json.dumps(shown, indent=2))


# The access log


@audit_app.command("verify")
def audit_verify() -> None:
    """Check the access log's hash chain; exit 1 listing every changed, inserted or deleted row."""
    from health.audit.log import AuditLog

    settings = Settings()
    database = _migrated_database(settings)
    try:
        with database.session(write=False) as session:
            report = AuditLog(session, settings.audit_key.encode()).verify()
    finally:
        database.dispose()
    if report.intact:
        typer.echo(f"{report.entries} entries, chain intact")
        return
    typer.echo(f"{report.entries} entries, {len(report.problems)} problems:")
    for problem in report.problems:
        typer.echo(f"  {problem}")
    raise typer.Exit(1)


@audit_app.command("break-glass")
def audit_break_glass(
    since: datetime = typer.Option(
        ..., formats=["%Y-%m-%d"], help="First day (UTC) of grants to list, YYYY-MM-DD."
    ),
    until: datetime | None = typer.Option(
        None, formats=["%Y-%m-%d"], help="Last day (UTC) of grants to list (default: today)."
    ),
    as_json: bool = typer.Option(False, "--json", help="JSON lines instead of a table."),
) -> None:
    """List emergency accesses: when, clinician, organisation, citizen, reason, disclosures."""
    from rich.console import Console
    from rich.table import Table

    from health.audit.log import AuditLog
    from health.audit.report import emergency_accesses

    start = since.replace(tzinfo=UTC)
    # --until names a whole day: grants up to its end.
    end = until.replace(tzinfo=UTC) + timedelta(days=1) if until is not None else None
    settings = Settings()
    database = _migrated_database(settings)
    try:
        with database.session(write=False) as session:
            accesses = emergency_accesses(
                AuditLog(session, settings.audit_key.encode()), start, end
            )
    finally:
        database.dispose()
    if as_json:
        for access in accesses:
            typer.echo(json.dumps(access.as_json()))
        return
    table = Table(
        "when (UTC)",
        "clinician",
        "organisation",
        "patient",
        "reason",
        "disclosures",
        title=f"Emergency access since {start.date().isoformat()}",
    )
    for access in accesses:
        clinician = access.clinician or ""
        if access.clinician_name:
            clinician = (
                f"{access.clinician_name} ({clinician})" if clinician else access.clinician_name
            )
        table.add_row(
            access.recorded.strftime("%Y-%m-%d %H:%M:%S"),
            clinician,
            access.organization or "",
            access.patient_id or "",
            access.reason or "",
            str(access.disclosures),
        )
    Console().print(table)
    if not accesses:
        typer.echo("No emergency access in this period")


if __name__ == "__main__":
    app()
