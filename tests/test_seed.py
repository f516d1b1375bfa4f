"""The demo world: it loads through the Bundle path, once, and reads back as a record."""

from __future__ import annotations

import base64
from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from health.db.engine import Database
from health.fhir.config import FhirConfig
from health.seed import PersonRole, SeedSummary, demo_persons, load_world, seed_demo_world
from health.seed.records import world_bundles
from health.settings import Settings

TODAY = date(2026, 11, 28)
CPR_SYSTEM = "urn:oid:1.2.208.176.1.2"
CPR_WEIGHTS = (4, 3, 2, 7, 6, 5, 4, 3, 2, 1)


def _seed(database: Database, settings: Settings, today: date = TODAY) -> SeedSummary:
    return seed_demo_world(database, FhirConfig.load(settings), today=today)


def _search(client: TestClient, query: str) -> list[dict[str, Any]]:
    response = client.get(f"/fhir/{query}")
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert "next" not in {link["relation"] for link in bundle.get("link", [])}, "raise _count"
    return [entry["resource"] for entry in bundle.get("entry", [])]


def test_the_world_loads_on_an_empty_database(database: Database, settings: Settings) -> None:
    world = load_world()
    summary = _seed(database, settings)

    assert summary.bundles_skipped == 0
    assert summary.citizens == len(world.citizens) == 10
    assert summary.created["Organization"] == 4
    assert summary.created["Practitioner"] == summary.created["PractitionerRole"] == 8
    assert summary.created["Patient"] == 10
    assert summary.created["RelatedPerson"] == len(world.relations)
    for resource_type in (
        "Encounter",
        "Condition",
        "Observation",
        "MedicationRequest",
        "MedicationStatement",
        "Immunization",
        "AllergyIntolerance",
        "Appointment",
        "ServiceRequest",
        "DocumentReference",
    ):
        assert summary.created.get(resource_type, 0) > 0, resource_type


def test_loading_twice_creates_nothing_new(
    database: Database, settings: Settings, client: TestClient
) -> None:
    first = _seed(database, settings)
    again = _seed(database, settings)
    # Restarted weeks later, the demo still recognises its world.
    later = _seed(database, settings, today=TODAY + timedelta(weeks=6))

    assert first.total > 0
    for summary in (again, later):
        assert summary.created == {}
        assert summary.bundles_loaded == 0
        assert summary.bundles_skipped == first.bundles_loaded
    patients = _search(client, "Patient?_count=100")
    assert len(patients) == 10
    assert {p["meta"]["versionId"] for p in patients} == {"1"}
    assert len(_search(client, "Organization?_count=100")) == 4


def test_every_citizen_has_a_patient_with_their_cpr(
    database: Database, settings: Settings, client: TestClient
) -> None:
    _seed(database, settings)

    for citizen in load_world().citizens.values():
        person = citizen.person
        found = _search(client, f"Patient?identifier={CPR_SYSTEM}|{person.cpr}")
        assert len(found) == 1, person.full_name
        patient = found[0]
        assert patient["name"][0]["family"] == person.family
        assert patient["birthDate"] == person.birth_date.isoformat()


def test_each_record_holds_data_from_a_hospital_and_a_gp(
    database: Database, settings: Settings, client: TestClient
) -> None:
    _seed(database, settings)
    organisations = {
        f"Organization/{o['id']}": o["type"][0]["text"]
        for o in _search(client, "Organization?_count=100")
    }
    providers: dict[str, set[str]] = defaultdict(set)
    sources: dict[str, set[str]] = defaultdict(set)
    for encounter in _search(client, "Encounter?_count=1000"):
        patient = encounter["subject"]["reference"]
        # The conditional reference in the pushed Bundle was resolved on the way in.
        providers[patient].add(organisations[encounter["serviceProvider"]["reference"]])
        sources[patient].add(encounter["meta"]["source"])

    assert len(providers) == 10
    for patient, kinds in providers.items():
        assert kinds == {"Hospital", "Almen praksis"}, patient
        assert len(sources[patient]) >= 2, patient


def test_appointments_are_booked_ahead_of_the_load_date(
    database: Database, settings: Settings, client: TestClient
) -> None:
    _seed(database, settings)

    appointments = _search(client, "Appointment?_count=100")
    ahead = [a for a in appointments if datetime.fromisoformat(a["start"]).date() > TODAY]
    assert ahead
    assert {a["status"] for a in ahead} == {"booked"}


def test_discharge_letters_are_readable_danish_text(
    database: Database, settings: Settings, client: TestClient
) -> None:
    _seed(database, settings)

    letters = _search(client, "DocumentReference?_count=100")
    assert letters
    for letter in letters:
        attachment = letter["content"][0]["attachment"]
        text = base64.b64decode(attachment["data"]).decode("utf-8")
        assert text.startswith("Epikrise: ")
        assert "Med venlig hilsen" in text
        assert letter["subject"]["reference"].startswith("Patient/")


def test_generation_is_deterministic() -> None:
    first = world_bundles(load_world(), TODAY)
    second = world_bundles(load_world(), TODAY)

    assert [orjson.dumps(b.bundle) for b in first] == [orjson.dumps(b.bundle) for b in second]
    assert [b.marker for b in first] == [b.marker for b in second]


def test_history_does_not_depend_on_the_load_date() -> None:
    earlier = world_bundles(load_world(), TODAY)
    later = world_bundles(load_world(), TODAY + timedelta(days=400))

    assert [b.marker for b in earlier] == [b.marker for b in later]


@pytest.mark.parametrize("role", list(PersonRole))
def test_demo_persons_have_fictitious_cpr_numbers(role: PersonRole) -> None:
    persons = [p for p in demo_persons() if p.role is role]

    assert persons
    for person in persons:
        cpr = person.national_id
        assert len(cpr) == 10 and cpr.isdigit(), person.name
        # Test numbers fail the modulus-11 check that real numbers were issued under.
        assert sum(int(d) * w for d, w in zip(cpr, CPR_WEIGHTS, strict=True)) % 11 != 0
        assert person.description


def test_demo_persons_are_unique_and_include_the_proxies() -> None:
    persons = demo_persons()
    world = load_world()

    assert len({p.national_id for p in persons}) == len(persons)
    for relation in world.relations:
        relative = world.person(relation.relative)
        assert relative.cpr in {p.national_id for p in persons}
