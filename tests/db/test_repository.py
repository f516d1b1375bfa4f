"""Repository lookups that conditional interactions use (health/db/repository.py).

The search engine and the caller's scope have their own tests (tests/db, tests/access);
these pin `match_identifiers`, the lookup of many identifiers at once, to what `match`
answers for each: the same resources, within the same scope.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI

from health.access.actor import SYSTEM, Actor, ActorKind
from health.db import repository as repository_module
from health.db.engine import Database
from health.db.repository import Repository
from health.fhir.criteria import Criterion, Token
from health.fhir.interactions import Interactions
from health.fhir.validation import check
from tests.db.conftest import statements_run

SAMPLE = "urn:lab:sample"


def _source(organization: str) -> Actor:
    return Actor(kind=ActorKind.client, display=organization, organization_id=organization)


def _observation(resource_id: str, sample: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": resource_id,
        "status": "final",
        "code": {"text": "haemoglobin"},
        "subject": {"reference": "Patient/anna"},
        "identifier": [{"system": SAMPLE, "value": sample}],
    }


def _write(app: FastAPI, database: Database, actor: Actor, *resources: dict[str, Any]) -> None:
    config = app.state.fhir_config
    with database.session(write=True) as session:
        interactions = Interactions(Repository(session, actor), config)
        for resource in resources:
            checked = check(resource, resource["resourceType"], config.types)
            interactions.update(resource["id"], checked)
        interactions.flush()


@pytest.fixture
def samples(app: FastAPI, database: Database) -> None:
    """north recorded S-1 (twice), S-2 and a deleted S-4; south recorded its own S-1."""
    _write(app, database, SYSTEM, {"resourceType": "Patient", "id": "anna"})
    _write(
        app,
        database,
        _source("north"),
        _observation("n1", "S-1"),
        _observation("n1-again", "S-1"),
        _observation("n2", "S-2"),
        _observation("n4", "S-4"),
    )
    _write(app, database, _source("south"), _observation("s1", "S-1"))
    with database.session(write=True) as session:
        interactions = Interactions(Repository(session, _source("north")), app.state.fhir_config)
        interactions.delete("Observation", "n4")
        interactions.flush()


def _each_alone(repository: Repository, samples: list[str]) -> dict[str, list[str]]:
    return {
        sample: [
            version.id
            for version in repository.match(
                "Observation",
                [Criterion("identifier", (Token(SAMPLE, sample, system_given=True),))],
                limit=2,
            )
        ]
        for sample in samples
    }


def _all_at_once(repository: Repository, samples: list[str]) -> dict[str, list[str]] | None:
    found = repository.match_identifiers(
        "Observation", [(SAMPLE, sample) for sample in samples], limit=2
    )
    if found is None:
        return None
    return {code: [version.id for version in versions] for (_, code), versions in found.items()}


@pytest.mark.usefixtures("samples")
@pytest.mark.parametrize(
    ("actor", "expected"),
    [
        (SYSTEM, {"S-1": ["n1", "n1-again"], "S-2": ["n2"], "S-4": [], "S-9": []}),
        (_source("north"), {"S-1": ["n1", "n1-again"], "S-2": ["n2"], "S-4": [], "S-9": []}),
        (_source("south"), {"S-1": ["s1"], "S-2": [], "S-4": [], "S-9": []}),
    ],
    ids=["system", "north", "south"],
)
def test_identifiers_matched_at_once_find_what_each_finds_alone(
    database: Database, actor: Actor, expected: dict[str, list[str]]
) -> None:
    wanted = ["S-1", "S-2", "S-4", "S-9", "S-1"]

    with database.session(write=False) as session:
        repository = Repository(session, actor)
        at_once = _all_at_once(repository, wanted)
        alone = _each_alone(repository, wanted)

    assert at_once == expected
    assert alone == expected


@pytest.mark.usefixtures("samples")
def test_too_many_candidates_leave_the_identifiers_to_be_matched_alone(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(repository_module, "_CANDIDATE_CAP", 1)

    with database.session(write=False) as session:
        found = _all_at_once(Repository.system(session), ["S-1", "S-2"])

    assert found is None


@pytest.mark.usefixtures("samples")
def test_the_versions_a_transaction_replaces_are_locked_in_one_statement(
    database: Database,
) -> None:
    keys = [
        ("Observation", "n1"),
        ("Patient", "anna"),
        ("Observation", "s1"),  # south's: not north's to see
        ("Observation", "n4"),  # deleted: its deletion is the current version
        ("Condition", "never-written"),
    ]

    with (
        database.session(write=True) as session,
        statements_run(database.write_engine) as executed,
    ):
        found = Repository(session, _source("north")).current_for_update(keys)

    assert {key: (v.version_id, v.deleted) if v else None for key, v in found.items()} == {
        ("Observation", "n1"): (1, False),
        ("Patient", "anna"): (1, False),
        ("Observation", "s1"): None,
        ("Observation", "n4"): (2, True),
        ("Condition", "never-written"): None,
    }
    (statement,) = [s for s, _ in executed if s.startswith("SELECT")]
    if database.write_engine.dialect.name == "postgresql":
        assert statement.rstrip().endswith("FOR UPDATE")
