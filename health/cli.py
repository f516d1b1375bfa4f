"""The `health` command: serve, demo, migrate."""

from __future__ import annotations

import os

import typer
import uvicorn

from health.db.engine import Database
from health.db.migrate import current_revision, upgrade_to_head
from health.fhir.config import FhirConfig
from health.seed import PersonRole, demo_persons, seed_demo_world
from health.settings import Settings

app = typer.Typer(
    help="One health record per citizen: FHIR R4 server and citizen portal.", no_args_is_help=True
)


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
) -> None:
    """Serve the FHIR API (migrating the database to the current schema first)."""
    _default_base_url(host, port)
    settings = Settings()
    database = Database(settings.database_url)
    upgrade_to_head(database.write_engine)
    database.dispose()
    uvicorn.run(
        "health.asgi:app", host=host, port=port, workers=workers, factory=False, log_level="info"
    )


@app.command()
def demo(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
) -> None:
    """Load the demo world (once), then serve with the embedded SQLite database."""
    _default_base_url(host, port)
    settings = Settings()
    database = Database(settings.database_url)
    upgrade_to_head(database.write_engine)
    summary = seed_demo_world(database, FhirConfig.load(settings))
    database.dispose()
    if summary.bundles_loaded:
        typer.echo(
            f"Demo world loaded: {summary.citizens} citizens, {summary.total} resources"
            f" in {summary.bundles_loaded} Bundles"
        )
    else:
        typer.echo(f"Demo world already loaded ({summary.citizens} citizens)")
    typer.echo("Some test persons (CPR numbers for the development eID):")
    persons = demo_persons()
    for role in PersonRole:
        for person in [p for p in persons if p.role is role][:2]:
            typer.echo(f"  {person.national_id}  {person.name} ({person.role})")
    typer.echo(f"Demo: FHIR API at {settings.fhir_base_url} (database {settings.database_url})")
    if settings.dev_eid:
        typer.echo(f"Development eID (log in as a test person) at {settings.dev_eid_issuer}")
    serve(host=host, port=port, workers=1)


@app.command()
def reindex(
    resource_type: str = typer.Option(None, "--type", help="Only this resource type."),
) -> None:
    """Rebuild the search index (after the search parameter definitions change)."""
    from rich.progress import Progress

    from health.fhir.reindex import reindex as rebuild

    settings = Settings()
    database = Database(settings.database_url)
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


@app.command()
def migrate() -> None:
    """Bring the database to the current schema."""
    settings = Settings()
    database = Database(settings.database_url)
    upgrade_to_head(database.write_engine)
    typer.echo(f"Database at revision {current_revision(database.write_engine)}")
    database.dispose()


if __name__ == "__main__":
    app()
