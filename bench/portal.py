"""Portal benchmark: the front page and the timeline for a citizen with 5,000 resources.

Loads the demo world (directory, organisations) into a fresh database, then pushes one
generated citizen's record (encounters with their lab results, diagnoses, medicines,
vaccinations, documents, appointments, referrals: --resources in all) as Nordhavn
Hospital through the push path, opens a portal session for that citizen, and requests
each page N times in-process (the app's ASGI stack, rendering included; no network),
then N times more with the portal's view cache emptied before each request ("cold").
Prints p50/p95/max per page, warm and cold.

    .venv/bin/python bench/portal.py --requests 50
    .venv/bin/python bench/portal.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres

See docs/BENCHMARKS.md ("Portal") for the figures.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from health.app import create_app
from health.auth.eid_login import EidIdentity
from health.db.engine import Database
from health.db.migrate import upgrade_to_head
from health.db.repository import Repository
from health.fhir.bundle_request import parse_bundle
from health.fhir.config import FhirConfig
from health.fhir.interactions import Interactions
from health.heap import settle_heap
from health.ingest.bulk import source_actor
from health.ingest.pipeline import push_bundle
from health.portal.sessions import SESSION_COOKIE, PortalSessionStore
from health.seed.load import seed_demo_world
from health.settings import Settings

CPR = "0103701991"
CPR_SYSTEM = "urn:oid:1.2.208.176.1.2"
LOINC = "http://loinc.org"
LABS = [
    ("59261-8", "HbA1c", "mmol/mol", 20, 48),
    ("14749-6", "P-Glukose", "mmol/L", 4.2, 6.3),
    ("14682-9", "P-Kreatinin", "umol/L", 45, 105),
    ("22748-8", "P-Kolesterol LDL", "mmol/L", 0.5, 3.0),
    ("2823-3", "P-Kalium", "mmol/L", 3.5, 4.6),
    ("59260-0", "B-Hæmoglobin", "mmol/L", 7.3, 10.5),
    ("1988-5", "CRP", "mg/L", 0, 8),
    ("29463-7", "Legemsvægt", "kg", None, None),
    ("33762-6", "NT-proBNP", "ng/L", 0, 125),
    ("2160-0", "Kreatinin (U)", "mmol/L", 5, 15),
]


def generated_record(resources: int) -> dict[str, Any]:
    """A transaction Bundle: one citizen, about `resources` resources over 20 years."""
    entries: list[dict[str, Any]] = []

    def add(resource: dict[str, Any]) -> str:
        full_url = f"urn:uuid:{uuid.uuid4()}"
        entries.append(
            {
                "fullUrl": full_url,
                "resource": resource,
                "request": {"method": "POST", "url": resource["resourceType"]},
            }
        )
        return full_url

    patient = add(
        {
            "resourceType": "Patient",
            "identifier": [{"system": CPR_SYSTEM, "value": CPR}],
            "name": [{"family": "Benchmark", "given": ["Bente"]}],
            "birthDate": "1970-03-01",
        }
    )
    subject = {"reference": patient}
    start = datetime(2005, 1, 10, 9, tzinfo=UTC)
    encounters = max(1, int(resources * 0.084))
    for number in range(encounters):
        when = start + timedelta(days=number * 17)
        cls = "IMP" if number % 40 == 0 else "AMB"
        code = {
            "coding": [
                {
                    "system": "http://hl7.org/fhir/sid/icd-10",
                    "code": ["E11.9", "I10", "J45.9", "M16.1"][number % 4],
                }
            ]
        }
        encounter = add(
            {
                "resourceType": "Encounter",
                "status": "finished",
                "class": {"code": cls},
                "type": [{"text": "Kontrolbesøg"}],
                "subject": subject,
                "reasonCode": [code],
                "period": {
                    "start": when.isoformat(),
                    "end": (when + timedelta(hours=1)).isoformat(),
                },
            }
        )
        for index, (loinc, name, unit, low, high) in enumerate(LABS):
            value = round((low or 50) + (high or 60) * ((number * 7 + index) % 13) / 10, 1)
            reference = {}
            if low is not None:
                reference = {"referenceRange": [{"low": {"value": low}, "high": {"value": high}}]}
            add(
                {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"coding": [{"system": LOINC, "code": loinc}], "text": name},
                    "subject": subject,
                    "encounter": {"reference": encounter},
                    "effectiveDateTime": when.isoformat(),
                    "valueQuantity": {"value": value, "unit": unit},
                    **reference,
                }
            )
        if number % 10 == 0:
            add(
                {
                    "resourceType": "Condition",
                    "subject": subject,
                    "code": code,
                    "clinicalStatus": {"coding": [{"code": "active"}]},
                    "onsetDateTime": when.date().isoformat(),
                    "encounter": {"reference": encounter},
                }
            )
        if number % 3 == 0:
            add(
                {
                    "resourceType": "MedicationRequest",
                    "status": "active",
                    "intent": "order",
                    "subject": subject,
                    "authoredOn": when.isoformat(),
                    "medicationCodeableConcept": {"text": f"Medicin {number % 12}"},
                    "dosageInstruction": [{"text": "1 dagligt"}],
                    "encounter": {"reference": encounter},
                }
            )
        if number % 4 == 0:
            add(
                {
                    "resourceType": "Immunization",
                    "status": "completed",
                    "patient": subject,
                    "vaccineCode": {"text": "Influenzavaccine"},
                    "occurrenceDateTime": when.isoformat(),
                }
            )
        if number % 7 == 0:
            add(
                {
                    "resourceType": "DocumentReference",
                    "status": "current",
                    "subject": subject,
                    "description": f"Notat {number}",
                    "date": when.isoformat(),
                    "content": [{"attachment": {"contentType": "text/plain", "data": "SGVq"}}],
                    "context": {"encounter": [{"reference": encounter}]},
                }
            )
    for number in range(20):
        when = datetime.now(UTC) + timedelta(days=7 * (number - 10))
        add(
            {
                "resourceType": "Appointment",
                "status": "booked",
                "description": "Kontrol",
                "start": when.isoformat(),
                "end": (when + timedelta(minutes=30)).isoformat(),
                "participant": [{"actor": subject, "status": "accepted"}],
            }
        )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def _database_url(admin_url: str | None) -> tuple[str, Any]:
    if admin_url is None:
        folder = tempfile.mkdtemp(prefix="portal-bench-")
        return f"sqlite:///{Path(folder) / 'health.db'}", None
    url = make_url(admin_url)
    name = f"portal_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    return url.set(database=name).render_as_string(hide_password=False), drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--resources", type=int, default=5000)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--database-url", help="a PostgreSQL server (a database is made)")
    options = parser.parse_args()
    url, drop = _database_url(options.database_url)
    try:
        run(url, options.resources, options.requests)
    finally:
        if drop:
            drop()


def run(url: str, resources: int, requests: int) -> None:
    settings = Settings(database_url=url, base_url="http://testserver")  # type: ignore[call-arg]
    database = Database(url)
    upgrade_to_head(database.write_engine)
    config = FhirConfig.load(settings)
    seed_demo_world(database, config)
    bundle = generated_record(resources)
    pushed = len(bundle["entry"])
    with database.session(write=True) as session:
        interactions = Interactions(
            Repository(session, source_actor("nordhavn", "Nordhavn Hospital")), config
        )
        parsed = parse_bundle(
            bundle, config.types, base=settings.fhir_base_url, max_entries=len(bundle["entry"]) + 1
        )
        push_bundle(interactions, parsed, base=settings.fhir_base_url, prefer=None)
    if make_url(url).get_backend_name() == "postgresql":
        # What autovacuum does within a minute of a load this size: without statistics
        # PostgreSQL plans the patient's searches as nested loops (seconds instead of
        # milliseconds; docs/BENCHMARKS.md, "Portal"). Done here, it does not run on
        # the other core while the pages are timed.
        with database.write_engine.connect().execution_options(
            isolation_level="AUTOCOMMIT"
        ) as connection:
            connection.execute(text("VACUUM ANALYZE"))
    with database.session(write=True) as session:
        cookie = PortalSessionStore(session, settings).create(
            EidIdentity(
                national_id=CPR,
                name="Bente Benchmark",
                birth_date="1970-03-01",
                acr="substantial",
                id_token="",
            )
        )
    app = create_app(settings, database=database, migrate=False)
    # As a server process starts (health/asgi.py): the loading's garbage collected, what
    # is alive now frozen out of the collector's generations, the collector tuned.
    del bundle, parsed, interactions
    settle_heap()
    client = TestClient(app, base_url=settings.base_url)
    client.cookies.set(SESSION_COOKIE, cookie, path="/portal")
    dialect = make_url(url).get_backend_name()
    print(f"{pushed} resources pushed; {requests} requests per page; {dialect}")
    print(
        f"{'page':<38}{'first':>7}{'p50':>7}{'p95':>7}{'max':>7}"
        f"{'cold p50':>9}{'cold p95':>9}{'cold max':>9}{'bytes':>8}  (ms)"
    )
    for path in (
        "/portal/",
        "/portal/timeline",
        "/portal/timeline?kind=results&page=3",
        "/portal/results/59261-8",
        "/portal/medications",
    ):
        # The first request compiles templates and loads catalogs, and shapes what the
        # portal's view cache keeps (health/portal/view_cache.py): kept apart from the
        # figures, as "first". Then `requests` requests as they come (the cache warm),
        # and `requests` with the cache emptied before each ("cold": what the first
        # page after a change to the record, or in a new hour, costs).
        began = time.perf_counter()
        client.get(path)
        first = (time.perf_counter() - began) * 1000
        warm = _timed(client, path, requests)
        cold = _timed(client, path, requests, before=lambda: _empty_cache(app))
        print(
            f"{path:<38}{first:>7.0f}{_p(warm, 0.5):>7.0f}{_p(warm, 0.95):>7.0f}{warm[-1]:>7.0f}"
            f"{_p(cold, 0.5):>9.0f}{_p(cold, 0.95):>9.0f}{cold[-1]:>9.0f}"
            f"{len(client.get(path).content):>8}"
        )
    database.dispose()


def _timed(
    client: TestClient, path: str, requests: int, before: Callable[[], None] | None = None
) -> list[float]:
    """Milliseconds of each request, sorted."""
    timings = []
    for _ in range(requests):
        if before is not None:
            before()
        began = time.perf_counter()
        answer = client.get(path)
        timings.append((time.perf_counter() - began) * 1000)
        assert answer.status_code == 200, (path, answer.status_code)
    return sorted(timings)


def _p(timings: list[float], fraction: float) -> float:
    if fraction == 0.5:
        return statistics.median(timings)
    return timings[min(len(timings) - 1, round(fraction * (len(timings) - 1)))]


def _empty_cache(app: Any) -> None:
    """A new, empty view cache for the app (health/portal/view_cache.py)."""
    app.state.portal_view_cache = None


if __name__ == "__main__":
    main()
