"""_include, _revinclude and $everything over the reference index, on a real database.

The index rows are made by hand here (IndexRows), so these tests do not depend on the
extractor: they pin down what the repository does with the rows it is given.
https://hl7.org/fhir/R4/search.html#include
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import event

from health.db.engine import Database
from health.db.include_sql import MAX_ITERATE_ROUNDS
from health.db.repository import Repository
from health.db.versions import StoredVersion, Write
from health.fhir.search.includes import Include
from health.fhir.search.index_rows import IndexRows
from tests.db.conftest import sqlite_plan, statements_run

T0 = datetime(2026, 1, 1, tzinfo=UTC)
Ref = tuple[str, str, str]  # (param, target type, target id)


class Store:
    """Writes resources with hand-made reference rows, and reads through a Repository."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._versions: dict[tuple[str, str], int] = {}

    def put(
        self,
        key: str,
        *refs: Ref,
        patient: str | None = None,
        at: datetime = T0,
        deleted: bool = False,
    ) -> StoredVersion:
        resource_type, resource_id = key.split("/")
        version = self._versions.get((resource_type, resource_id), 0) + 1
        self._versions[(resource_type, resource_id)] = version
        body = None if deleted else orjson.dumps({"resourceType": resource_type, "id": resource_id})
        write = Write(
            resource_type=resource_type,
            id=resource_id,
            version_id=version,
            last_updated=at,
            method="DELETE" if deleted else "PUT",
            body=body,
            patient_id=patient,
            index=IndexRows(references=[(p, t, i, None) for p, t, i in refs]),
        )
        with self.database.session(write=True) as session:
            Repository.system(session).save([write])
        return write.as_stored()

    def included(
        self, matches: list[StoredVersion], *includes: Include, limit: int = 100
    ) -> list[str]:
        with self.database.session(write=False) as session:
            found = Repository.system(session).included(matches, includes, limit=limit)
        return [f"{v.resource_type}/{v.id}" for v in found]

    def everything(self, patient_id: str, **options: Any) -> list[tuple[str, bool]]:
        options.setdefault("limit", 100)
        with self.database.session(write=False) as session:
            page = Repository.system(session).everything(patient_id, **options)
        return [(f"{v.resource_type}/{v.id}", in_compartment) for v, in_compartment in page.entries]


@pytest.fixture
def store(database: Database) -> Store:
    return Store(database)


@pytest.fixture
def encounter(store: Store) -> StoredVersion:
    """Patient p1's encounter, referring to a practitioner, an organisation, a location."""
    store.put("Patient/p1", patient="p1")
    store.put("Practitioner/dr1")
    store.put("Organization/org1")
    store.put("Location/loc1")
    return store.put(
        "Encounter/e1",
        ("subject", "Patient", "p1"),
        ("participant", "Practitioner", "dr1"),
        ("service-provider", "Organization", "org1"),
        ("location", "Location", "loc1"),
        patient="p1",
    )


# _include


def test_include_adds_what_the_named_parameter_refers_to(
    store: Store, encounter: StoredVersion
) -> None:
    assert store.included([encounter], Include("Encounter", "participant")) == ["Practitioner/dr1"]
    assert store.included([encounter], Include("Encounter", "service-provider")) == [
        "Organization/org1"
    ]


def test_include_wildcard_follows_every_reference_parameter(
    store: Store, encounter: StoredVersion
) -> None:
    assert sorted(store.included([encounter], Include("Encounter", "*"))) == [
        "Location/loc1",
        "Organization/org1",
        "Patient/p1",
        "Practitioner/dr1",
    ]


def test_include_target_type_narrows_what_is_added(store: Store, encounter: StoredVersion) -> None:
    assert store.included([encounter], Include("Encounter", "*", "Organization")) == [
        "Organization/org1"
    ]
    assert store.included([encounter], Include("Encounter", "participant", "Organization")) == []


def test_include_applies_only_to_matches_of_its_source_type(
    store: Store, encounter: StoredVersion
) -> None:
    assert store.included([encounter], Include("Observation", "*")) == []


def test_include_skips_deleted_and_missing_targets(store: Store) -> None:
    store.put("Practitioner/gone")
    store.put("Practitioner/gone", deleted=True)
    observation = store.put(
        "Observation/o1",
        ("performer", "Practitioner", "gone"),
        ("performer", "Practitioner", "never-written"),
    )
    assert store.included([observation], Include("Observation", "performer")) == []


def test_nothing_is_returned_twice_nor_a_match_again(
    store: Store, encounter: StoredVersion
) -> None:
    patient = store.put("Patient/p1", patient="p1")
    second = store.put(
        "Encounter/e2",
        ("subject", "Patient", "p1"),
        ("participant", "Practitioner", "dr1"),
        patient="p1",
    )
    found = store.included(
        [patient, encounter, second],
        Include("Encounter", "*"),
        Include("Encounter", "participant"),
        Include("Encounter", "subject"),
    )
    assert sorted(found) == ["Location/loc1", "Organization/org1", "Practitioner/dr1"]


# _revinclude


def test_revinclude_adds_the_resources_that_refer_to_the_matches(store: Store) -> None:
    p1 = store.put("Patient/p1", patient="p1")
    store.put("Patient/p2", patient="p2")
    store.put("Observation/a", ("subject", "Patient", "p1"), patient="p1")
    store.put("Observation/b", ("subject", "Patient", "p1"), patient="p1")
    store.put("Observation/other", ("subject", "Patient", "p2"), patient="p2")
    store.put("Observation/deleted", ("subject", "Patient", "p1"), patient="p1")
    store.put("Observation/deleted", deleted=True, patient="p1")
    store.put("Observation/by-performer", ("performer", "Patient", "p1"), patient="p1")
    assert store.included([p1], Include("Observation", "subject", reverse=True)) == [
        "Observation/a",
        "Observation/b",
    ]
    assert store.included([p1], Include("Observation", "*", reverse=True)) == [
        "Observation/a",
        "Observation/b",
        "Observation/by-performer",
    ]


def test_revinclude_target_type_narrows_which_matches_count(store: Store) -> None:
    patient = store.put("Patient/p1", patient="p1")
    encounter = store.put("Encounter/e1", ("subject", "Patient", "p1"), patient="p1")
    store.put("Provenance/of-patient", ("target", "Patient", "p1"), patient="p1")
    store.put("Provenance/of-encounter", ("target", "Encounter", "e1"), patient="p1")
    matches = [patient, encounter]
    assert store.included(matches, Include("Provenance", "target", reverse=True)) == [
        "Provenance/of-encounter",
        "Provenance/of-patient",
    ]
    assert store.included(matches, Include("Provenance", "target", "Encounter", reverse=True)) == [
        "Provenance/of-encounter"
    ]


# :iterate


@pytest.fixture
def panel(store: Store) -> StoredVersion:
    """Observation/o0 has member o1, which has member o2, ... up to o4; o4 points back."""
    for n in range(4):
        store.put(f"Observation/o{n + 1}", ("has-member", "Observation", f"o{n + 2}"))
    store.put("Observation/o4", ("has-member", "Observation", "o0"))
    return store.put(
        "Observation/o0",
        ("has-member", "Observation", "o1"),
        ("performer", "Practitioner", "dr1"),
    )


def test_without_iterate_a_rule_applies_to_the_matches_only(
    store: Store, panel: StoredVersion
) -> None:
    assert store.included([panel], Include("Observation", "has-member")) == ["Observation/o1"]


def test_iterate_follows_what_was_added_until_nothing_is_new(
    store: Store, panel: StoredVersion
) -> None:
    found = store.included([panel], Include("Observation", "has-member", iterate=True))
    # o4 refers back to the match o0, which is not added again.
    assert found == ["Observation/o1", "Observation/o2", "Observation/o3", "Observation/o4"]


def test_iterate_rules_apply_to_what_other_rules_added(store: Store) -> None:
    patient = store.put("Patient/p1", patient="p1")
    store.put("Practitioner/dr1")
    store.put("Practitioner/dr2")
    store.put("Observation/a", ("subject", "Patient", "p1"), ("performer", "Practitioner", "dr1"))
    store.put("Observation/b", ("subject", "Patient", "p1"), ("performer", "Practitioner", "dr2"))
    found = store.included(
        [patient],
        Include("Observation", "subject", reverse=True),
        Include("Observation", "performer", iterate=True),
    )
    assert found == ["Observation/a", "Observation/b", "Practitioner/dr1", "Practitioner/dr2"]
    without_iterate = store.included(
        [patient],
        Include("Observation", "subject", reverse=True),
        Include("Observation", "performer"),
    )
    assert without_iterate == ["Observation/a", "Observation/b"]


def test_iterate_stops_after_the_round_limit(store: Store) -> None:
    depth = MAX_ITERATE_ROUNDS + 3
    for n in range(1, depth):
        store.put(f"Observation/c{n}", ("has-member", "Observation", f"c{n + 1}"))
    store.put(f"Observation/c{depth}")
    start = store.put("Observation/c0", ("has-member", "Observation", "c1"))
    found = store.included([start], Include("Observation", "has-member", iterate=True))
    assert found == [f"Observation/c{n}" for n in range(1, MAX_ITERATE_ROUNDS + 2)]


def test_limit_caps_the_rows_added(store: Store, panel: StoredVersion) -> None:
    rule = Include("Observation", "has-member", iterate=True)
    assert store.included([panel], rule, limit=2) == ["Observation/o1", "Observation/o2"]
    assert store.included([panel], rule, limit=0) == []


@pytest.fixture
def statements(database: Database) -> Iterator[list[str]]:
    """The SELECT statements run against the database while the test runs."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    event.listen(database.read_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(database.read_engine, "before_cursor_execute", record)


def test_one_query_per_rule_per_round_not_per_match(store: Store, statements: list[str]) -> None:
    matches = []
    for n in range(30):
        store.put(f"Practitioner/dr{n}")
        encounter = store.put(
            f"Encounter/e{n}", ("participant", "Practitioner", f"dr{n}"), patient="p"
        )
        store.put(f"Provenance/pv{n}", ("target", "Encounter", f"e{n}"), patient="p")
        matches.append(encounter)
    statements.clear()
    found = store.included(
        matches,
        Include("Encounter", "participant"),
        Include("Provenance", "target", reverse=True),
        # Nothing of this rule's source type is matched: no query at all.
        Include("Observation", "performer"),
    )
    assert len(found) == 60
    assert len(statements) == 2


# Patient/$everything


def test_everything_is_the_compartment_plus_the_directory_it_refers_to(
    store: Store, encounter: StoredVersion
) -> None:
    store.put("Patient/p2", patient="p2")
    store.put("Practitioner/unreferenced")
    store.put("Organization/org2")
    store.put(
        "Encounter/theirs",
        ("subject", "Patient", "p2"),
        ("service-provider", "Organization", "org2"),
        patient="p2",
    )
    # A reference from p1's record into p2's compartment never brings p2's data in.
    store.put(
        "Observation/o1",
        ("subject", "Patient", "p1"),
        ("has-member", "Observation", "p2-obs"),
        patient="p1",
    )
    store.put("Observation/p2-obs", ("subject", "Patient", "p2"), patient="p2")
    assert store.everything("p1") == [
        ("Encounter/e1", True),
        ("Location/loc1", False),
        ("Observation/o1", True),
        ("Organization/org1", False),
        ("Patient/p1", True),
        ("Practitioner/dr1", False),
    ]


def test_on_sqlite_everything_finds_the_directory_it_refers_to_by_key(
    store: Store, encounter: StoredVersion
) -> None:
    """The directory arm of the page's keys starts from the few keys the record refers
    to, not from every resource outside a compartment (`patient_id IS NULL`, which an
    index serves: a country's directory) probed against them."""
    database = store.database
    if not database.is_sqlite:
        pytest.skip("SQLite's planner without statistics; PostgreSQL plans from its own")
    for number in range(50):
        store.put(f"Practitioner/other{number}")
    with statements_run(database.read_engine) as executed:
        assert ("Practitioner/dr1", False) in store.everything("p1")
    plan = sqlite_plan(database, *next((s, p) for s, p in executed if "UNION ALL" in s))
    by_patient = [step for step in plan if "resource USING INDEX ix_resource_patient" in step]
    by_key = [step for step in plan if "resource USING INDEX sqlite_autoindex_resource_1" in step]
    assert len(by_patient) == 1, plan  # the compartment's own resources
    # The directory, by the keys referred to; then the page's resources, by key.
    assert len(by_key) == 2, plan
    assert not [step for step in plan if step.startswith("SCAN resource")], plan


def test_everything_leaves_out_deleted_resources(store: Store, encounter: StoredVersion) -> None:
    store.put("Location/loc1", deleted=True)
    store.put("Encounter/e1", deleted=True, patient="p1")
    assert store.everything("p1") == [("Patient/p1", True)]


def test_everything_filters_by_type_and_since(store: Store, encounter: StoredVersion) -> None:
    later = T0 + timedelta(days=1)
    store.put("Practitioner/dr1", at=later)
    store.put("Observation/o1", ("performer", "Practitioner", "dr1"), patient="p1", at=later)
    assert store.everything("p1", types=["Practitioner", "Patient"]) == [
        ("Patient/p1", True),
        ("Practitioner/dr1", False),
    ]
    assert store.everything("p1", since=later) == [
        ("Observation/o1", True),
        ("Practitioner/dr1", False),
    ]


def test_everything_pages_by_type_and_id(store: Store, encounter: StoredVersion) -> None:
    first = store.everything("p1", limit=2)
    assert first == [("Encounter/e1", True), ("Location/loc1", False)]
    rest = store.everything("p1", after=("Location", "loc1"), limit=10)
    assert [key for key, _ in rest] == ["Organization/org1", "Patient/p1", "Practitioner/dr1"]


def test_everything_pages_through_the_whole_record_at_any_page_size(store: Store) -> None:
    # Types that are prefixes of one another, directory types between compartment ones,
    # one directory resource referred to twice and one referred to by another patient.
    store.put("Patient/p1", patient="p1")
    store.put("Medication/m1")
    store.put("Medication/m2")
    store.put("Organization/org1")
    store.put("Organization/org2")
    for i in range(3):
        store.put(
            f"MedicationRequest/mr{i}",
            ("subject", "Patient", "p1"),
            ("medication", "Medication", f"m{i % 2 + 1}"),
            patient="p1",
        )
    store.put("Encounter/e1", ("service-provider", "Organization", "org1"), patient="p1")
    store.put("Encounter/e2", ("service-provider", "Organization", "org2"), patient="p2")
    whole = store.everything("p1")
    assert [key for key, _ in whole] == [
        "Encounter/e1",
        "Medication/m1",
        "Medication/m2",
        "MedicationRequest/mr0",
        "MedicationRequest/mr1",
        "MedicationRequest/mr2",
        "Organization/org1",
        "Patient/p1",
    ]

    for size in (1, 2, 3):
        pages: list[list[tuple[str, bool]]] = []
        after: tuple[str, str] | None = None
        while True:
            page = store.everything("p1", after=after, limit=size)
            if not page:
                break
            pages.append(page)
            last_type, last_id = page[-1][0].split("/")
            after = (last_type, last_id)
        assert [entry for page in pages for entry in page] == whole
        assert all(len(page) == size for page in pages[:-1])
