"""The caller's scope as SQL (health/db/access_sql.py): a clause built once per process
and table, that every caller of the same shape shares with their own values.

The rules themselves are tested over HTTP in tests/access/; this pins down what the
sharing must not break: a compiled statement reused for another caller filters with
that caller's parties and time, not the first caller's.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from health.access.actor import SYSTEM, Actor, ActorKind
from health.access.policy import CareRules, Policy
from health.access.scope import Visibility, visibility_of
from health.auth.scopes import Scopes
from health.db.access_sql import compartment_clause, decided_by_row, visible_clause
from health.db.engine import Database
from health.db.repository import Repository
from health.db.versions import Write
from health.fhir.interactions import Interactions
from health.fhir.search.includes import Include
from health.fhir.search.index_rows import IndexRows
from health.fhir.search.params import SearchLimits, SearchRequest, parse_search
from health.fhir.search.scope import confine_to_patient
from health.fhir.validation import check
from tests.access.conftest import consent_resource
from tests.db.conftest import sqlite_plan, statements_compiled, statements_run

NOW = datetime.now(UTC)
DAY = timedelta(days=1)


def _write(app: FastAPI, database: Database, resource: dict[str, Any], by: str | None) -> None:
    """Store `resource` as recorded by `Organization/<by>`, or the system."""
    actor = SYSTEM if by is None else Actor(kind=ActorKind.client, display=by, organization_id=by)
    config = app.state.fhir_config
    with database.session(write=True) as session:
        interactions = Interactions(Repository(session, actor), config)
        interactions.update(resource["id"], check(resource, resource["resourceType"], config.types))
        interactions.flush()


def _clinician(key: str) -> Actor:
    return Actor(
        kind=ActorKind.clinician,
        display=key,
        scopes=Scopes.parse("user/*.rs"),
        fhir_user=f"Practitioner/{key}",
    )


def _encounter(key: str, citizen: str, place: str, when: str) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "id": key,
        "status": "finished",
        "class": {"code": "AMB"},
        "subject": {"reference": f"Patient/{citizen}"},
        "serviceProvider": {"reference": f"Organization/{place}"},
        "period": {"start": when, "end": when},
    }


def _observation(key: str, citizen: str, text: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": key,
        "status": "final",
        "code": {"text": text},
        "subject": {"reference": f"Patient/{citizen}"},
    }


@pytest.fixture
def two_practices(app: FastAPI, database: Database) -> None:
    """dr-north works at north, which treats anna; dr-south at south, which treats bo."""
    for place, doctor, citizen in (("north", "dr-north", "anna"), ("south", "dr-south", "bo")):
        when = (NOW - 10 * DAY).strftime("%Y-%m-%dT%H:%M:%SZ")
        for resource, by in (
            ({"resourceType": "Organization", "id": place}, None),
            ({"resourceType": "Practitioner", "id": doctor}, None),
            (
                {
                    "resourceType": "PractitionerRole",
                    "id": f"{doctor}-role",
                    "practitioner": {"reference": f"Practitioner/{doctor}"},
                    "organization": {"reference": f"Organization/{place}"},
                },
                place,
            ),
            ({"resourceType": "Patient", "id": citizen}, None),
            (_encounter(f"{citizen}-visit", citizen, place, when), place),
        ):
            _write(app, database, resource, by)


@pytest.fixture
def cache_hits(database: Database) -> Iterator[list[str]]:
    """How each statement read came by its compiled form (`statements_compiled`)."""
    with statements_compiled(database.read_engine) as compiled:
        yield compiled


def _patients_seen(database: Database, actor: Actor, now: datetime = NOW) -> set[str]:
    with database.session(write=False) as session:
        repository = Repository(session, actor, now=now)
        return {key for key in ("anna", "bo") if repository.current("Patient", key) is not None}


@pytest.mark.usefixtures("two_practices")
def test_a_statement_compiled_for_one_clinician_filters_with_the_next_ones_values(
    database: Database, cache_hits: list[str]
) -> None:
    assert _patients_seen(database, _clinician("dr-north")) == {"anna"}
    cache_hits.clear()

    assert _patients_seen(database, _clinician("dr-south")) == {"bo"}
    # The same statement, from the cache, with dr-south's parties.
    assert cache_hits and all(hit == "CACHE_HIT" for hit in cache_hits)
    assert _patients_seen(database, _clinician("dr-north")) == {"anna"}


@pytest.mark.usefixtures("two_practices")
def test_the_time_a_repository_reads_at_is_a_value_of_the_shared_clause(
    database: Database,
) -> None:
    # The treatment window (365 days) has passed a year and a half later.
    later = NOW + 540 * DAY
    assert _patients_seen(database, _clinician("dr-north"), later) == set()
    assert _patients_seen(database, _clinician("dr-north")) == {"anna"}


def _sees(database: Database, actor: Actor, resource_type: str, resource_id: str) -> bool:
    with database.session(write=False) as session:
        return Repository(session, actor, now=NOW).current(resource_type, resource_id) is not None


@pytest.mark.usefixtures("two_practices")
def test_where_a_write_changes_what_a_caller_sees_of_other_resources_the_scope_says_so(
    app: FastAPI, database: Database
) -> None:
    """decided_by_row (a batch's matches are kept across writes where it holds) is
    false exactly where writing one resource shows the caller another."""
    north = Actor(
        kind=ActorKind.client,
        display="north",
        organization_id="north",
        scopes=Scopes.parse("system/*.rs"),
    )
    dr_north = _clinician("dr-north")
    when = (NOW - DAY).strftime("%Y-%m-%dT%H:%M:%SZ")
    _write(app, database, _observation("bo-weight", "bo", "weight"), "south")
    assert not _sees(database, north, "Patient", "bo")
    assert not _sees(database, dr_north, "Observation", "bo-weight")

    # north's client records a note about bo, and from then on sees bo's Patient.
    _write(app, database, _observation("bo-note", "bo", "note"), "north")
    assert _sees(database, north, "Patient", "bo")
    assert not decided_by_row(_visibility(database, north), "Patient")
    # north records an encounter with bo: dr-north now sees what south recorded.
    _write(app, database, _encounter("bo-visit-north", "bo", "north", when), "north")
    assert _sees(database, dr_north, "Observation", "bo-weight")
    assert not decided_by_row(_visibility(database, dr_north), "Observation")
    # Neither a clinician's view of the directory nor a client's of what it recorded
    # depends on rows of other tables.
    assert decided_by_row(_visibility(database, dr_north), "Organization")
    assert decided_by_row(_visibility(database, north), "Observation")


def _visibility(database: Database, actor: Actor) -> Visibility:
    with database.session(write=False) as session:
        return Repository(session, actor, now=NOW).visibility


def test_the_clause_renders_with_its_own_values_outside_the_cache() -> None:
    """Literal rendering (EXPLAIN, debugging) compiles apart from the cache: it shows
    this caller's values, whoever's were compiled before."""
    resource = Repository.schema().tables["resource"]
    for doctor, place in (("dr-north", "north"), ("dr-south", "south")):
        scope = visibility_of(_clinician(doctor), NOW, CareRules(), (f"Organization/{place}",))
        statement = select(resource.c.id).where(visible_clause(scope, resource))
        for dialect in (sqlite.dialect(), postgresql.dialect()):
            sql = str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
            assert f"'Organization/{place}'" in sql and f"'Practitioner/{doctor}'" in sql
            assert ("north" in sql) == (place == "north")


def _compartment_rows(
    repository: Repository,
    table: Any,
    patient: str,
    *,
    confined: bool,
    resource_type: str | None = None,
) -> set:
    """(type, id) of `table`'s rows in `patient`'s compartment (of `resource_type`, if
    given) that the repository's caller may see: through the compartment clause, or the
    whole visibility clause."""
    key = table.c.id if "id" in table.c else table.c.resource_id
    statement = select(table.c.resource_type, key).where(table.c.patient_id == patient)
    if resource_type is not None:
        statement = statement.where(table.c.resource_type == resource_type)
    if not confined:
        return set(repository._session.execute(repository._visible(statement, table)).tuples())
    clause = compartment_clause(repository.visibility, table, patient, resource_type)
    if clause is not None:
        statement = statement.where(clause)
    return set(repository._session.execute(statement).tuples())


_PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"


@pytest.fixture
def anna_permits_north(app: FastAPI, database: Database, two_practices: None) -> None:
    """anna's Consent, in her record: north may look (which opt-in needs)."""
    role = {"coding": [{"system": _PARTICIPATION, "code": "IRCP"}]}
    north = {"role": role, "reference": {"reference": "Organization/north"}}
    provision = {"type": "permit", "actor": [north]}
    _write(app, database, consent_resource("anna", "anna-consent", provision), None)


def _callers() -> list[tuple[Actor, CareRules]]:
    """A caller of every kind (and of both policies for a clinician), with the rules
    its repository is made with."""
    opt_out, opt_in = CareRules(), CareRules(policy=Policy.opt_in)
    return [
        (Actor(kind=ActorKind.citizen, display="anna", patient_id="anna"), opt_out),
        (
            Actor(
                kind=ActorKind.citizen,
                display="anna, encounters only",
                patient_id="anna",
                scopes=Scopes.parse("patient/Encounter.rs"),
            ),
            opt_out,
        ),
        (_clinician("dr-north"), opt_out),
        (_clinician("dr-north"), opt_in),
        (_clinician("dr-nowhere"), opt_out),
        (Actor(kind=ActorKind.client, display="north", organization_id="north"), opt_out),
        (Actor(kind=ActorKind.auditor, display="auditor"), opt_out),
        (SYSTEM, opt_out),
    ]


@pytest.mark.usefixtures("anna_permits_north")
def test_the_compartment_clause_leaves_the_rows_the_whole_clause_leaves(
    database: Database,
) -> None:
    """A query confined to one compartment (and perhaps one type) may drop what the
    confinement makes true or false: for each kind of caller, in each compartment, of
    every type and of each type, on tables and on an alias (whose clause is built per
    request), the same rows as the whole clause."""
    tables = Repository.schema().tables
    types = (None, "Encounter", "Patient", "Consent", "Observation")
    with database.session(write=False) as session:
        for actor, rules in _callers():
            repository = Repository(session, actor, rules=rules, now=NOW)
            alias = tables["resource"].alias()
            for table in (tables["resource"], tables["search_reference"], alias):
                for patient, resource_type in itertools.product(("anna", "bo"), types):
                    whole, confined = (
                        _compartment_rows(
                            repository, table, patient, confined=c, resource_type=resource_type
                        )
                        for c in (False, True)
                    )
                    assert confined == whole, (actor.display, rules, table, patient, resource_type)
    # Not vacuous: the citizen sees their compartment, and the narrow token less of it;
    # the clinician and the client see anna's visit and nothing of bo's, and not her
    # Consent; under opt-in, the clinician sees anna's record because she permits north.
    with database.session(write=False) as session:
        seen = {
            n: _compartment_rows(
                Repository(session, actor, rules=rules, now=NOW),
                tables["resource"],
                "anna",
                confined=True,
            )
            for n, (actor, rules) in enumerate(_callers())
        }
        anna = Repository(session, _callers()[0][0], now=NOW)
        bo = _compartment_rows(anna, tables["resource"], "bo", confined=True)
    visit, patient = ("Encounter", "anna-visit"), ("Patient", "anna")
    consent = ("Consent", "anna-consent")
    assert seen[0] == {visit, patient, consent} and bo == set()
    assert seen[1] == {visit}
    assert seen[2] == seen[3] == {visit, patient}
    assert seen[4] == set()
    assert seen[5] == {visit, patient}


def _found(repository: Repository, request: SearchRequest, limit: int) -> tuple[set, int | None]:
    """(type, id) of a search's first page of `limit`, and its total."""
    page = repository.search(request, limit=limit)
    return {(m.resource_type, m.id) for m in page.matches}, page.total


@pytest.mark.usefixtures("anna_permits_north")
def test_a_search_confined_to_one_patient_finds_what_the_whole_scope_finds(
    app: FastAPI, database: Database
) -> None:
    """Repository.search scopes a search of one patient's record by the compartment's
    clause, relying on the search's own type and `patient_id = <patient>`: the same matches and
    totals as the search scoped by the whole clause, for every kind of caller."""
    config = app.state.fhir_config
    limits = SearchLimits(default_count=50, max_count=1000)
    searches = [("Encounter", [("patient", patient)]) for patient in ("anna", "bo")] + [
        ("Patient", [("_id", "anna")]),
        ("Encounter", [("subject", "Patient/anna")]),
    ]
    seen = set()
    with database.session(write=False) as session:
        for actor, rules in _callers():
            for resource_type, pairs in searches:
                request = confine_to_patient(
                    parse_search(
                        resource_type, pairs, config.search, base_url="http://x", limits=limits
                    ),
                    config.search,
                    config.compartment,
                )
                if resource_type == "Encounter":
                    assert request.patient is not None
                whole = dataclasses.replace(request, patient=None)
                for limit in (0, 1, 50):
                    confined, unconfined = (
                        _found(Repository(session, actor, rules=rules, now=NOW), r, limit)
                        for r in (request, whole)
                    )
                    assert confined == unconfined, (actor.display, rules, resource_type, pairs)
                    seen |= confined[0]
    assert {("Encounter", "anna-visit"), ("Encounter", "bo-visit")} <= seen


# A record of several types, so that a $everything page asks for keys of several types.
_ANNAS_RECORD = ("AllergyIntolerance", "CarePlan", "Claim", "Condition", "Immunization")


def _record_by(database: Database, actor: Actor, patient: str, types: tuple[str, ...]) -> None:
    """One resource of each type in `patient`'s compartment, recorded by `actor`."""
    writes = [
        Write(
            resource_type=resource_type,
            id=f"{patient}-{resource_type.lower()}",
            version_id=1,
            last_updated=NOW,
            method="PUT",
            body=orjson.dumps({"resourceType": resource_type}),
            patient_id=patient,
            index=IndexRows(),
        )
        for resource_type in types
    ]
    with database.session(write=True) as session:
        Repository(session, actor, now=NOW).save(writes)


def _reads_of_resource(database: Database, statement: str, parameters: Any) -> list[str]:
    """How SQLite's plan for `statement` reads the resource table itself (not the
    aliases the scope probes)."""
    plan = sqlite_plan(database, statement, parameters)
    return [step for step in plan if step.startswith(("SCAN resource", "SEARCH resource "))]


@pytest.mark.usefixtures("two_practices")
def test_on_sqlite_a_clients_include_and_everything_page_are_read_by_primary_key(
    database: Database,
) -> None:
    """The scope filters the few resources a lookup by key finds; it must not become
    the way in. A client's clause is an OR that indexes serve (no patient, or recorded
    by it, or a Patient), and SQLite, without statistics, read every resource the
    client recorded through it instead (docs/BENCHMARKS.md, "Search")."""
    if not database.is_sqlite:
        pytest.skip("SQLite's planner without statistics; PostgreSQL plans from its own")
    north = Actor(kind=ActorKind.client, display="north", organization_id="north")
    _record_by(database, north, "anna", _ANNAS_RECORD)
    _record_by(
        database,
        Actor(kind=ActorKind.client, display="south", organization_id="south"),
        "bo",
        _ANNAS_RECORD,
    )
    with (
        statements_run(database.read_engine) as executed,
        database.session(write=False) as session,
    ):
        repository = Repository(session, north, now=NOW)
        visit = repository.current("Encounter", "anna-visit")
        assert visit is not None
        executed.clear()
        included = repository.included(
            [visit],
            [Include("Encounter", "subject"), Include("Encounter", "service-provider")],
            limit=10,
        )
        include_statements = list(executed)
        executed.clear()
        page = repository.everything("anna", limit=100)
        # The page (its keys and the resources joined to them), then what the rules
        # withheld, for the access log.
        everything_statement = next((s, p) for s, p in executed if "UNION ALL" in s)

    # anna's Patient was recorded by the system: north sees it because it recorded
    # something for her (the Encounter), and sees nothing of bo's.
    assert {(v.resource_type, v.id) for v in included} == {
        ("Patient", "anna"),
        ("Organization", "north"),
    }
    assert {(v.resource_type, v.id) for v, _ in page.entries} == {
        ("Patient", "anna"),
        ("Encounter", "anna-visit"),
        ("Organization", "north"),
        *((t, f"anna-{t.lower()}") for t in _ANNAS_RECORD),
    }
    assert include_statements
    for statement, parameters in include_statements:
        reads = _reads_of_resource(database, statement, parameters)
        assert reads, statement
        assert all("sqlite_autoindex_resource_1" in read for read in reads), reads
    # The page: the compartment by its patient, the directory it refers to and then
    # the page's resources by key.
    reads = _reads_of_resource(database, *everything_statement)
    by_key = [read for read in reads if "sqlite_autoindex_resource_1" in read]
    assert len(by_key) == 2, reads
    assert set(reads) - set(by_key) == {
        "SEARCH resource USING INDEX ix_resource_patient (patient_id=?)"
    }, reads
