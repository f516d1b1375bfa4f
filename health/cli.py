"""The `health` command: serve, demo, migrate."""

from __future__ import annotations

import typer
import uvicorn

from health.db.engine import Database
from health.db.migrate import current_revision, upgrade_to_head
from health.settings import Settings

app = typer.Typer(
    help="One health record per citizen: FHIR R4 server and citizen portal.", no_args_is_help=True
)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    workers: int = typer.Option(1, help="Worker processes (PostgreSQL: one per core)."),
) -> None:
    """Serve the FHIR API (migrating the database to the current schema first)."""
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
    """Serve with the embedded SQLite database and the demo world."""
    settings = Settings()
    typer.echo(f"Demo: FHIR API at {settings.fhir_base_url} (database {settings.database_url})")
    typer.echo(
        "The seeded demo world (citizens, hospitals, GPs) arrives with the ingest work;"
        " for now the server starts empty."
    )
    serve(host=host, port=port, workers=1)


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
