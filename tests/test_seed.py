"""The demo world: pushed by the organisations that recorded it, once, and stored as one
record per citizen that mixes hospital and GP data, each entry naming its source.

What was stored is read as the system (the `stored` fixture): who may see which part of
it is the access rules' business, tested in tests/access/."""

from __future__ import annotations

import base64
import dataclasses
from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any

import orjson
import pytest

from health.db.engine import Database
from health.fhir.config import FhirConfig
from health.seed import (
    PersonRole,
    SeedSummary,
    World,
    citizen_bundle,
    demo_persons,
    load_world,
    seed_demo_world,
    world_pushes,
)
from health.settings import Settings

# tests/conftest.py: the stored records, read as the system.
StoredRecords = Any

TODAY = date(2026, 11, 28)
BASE = "http://testserver/fhir"
CPR_SYSTEM = "urn:oid:1.2.208.176.1.2"
FACT_SYSTEM = "urn:health:fact"
CPR_WEIGHTS = (4, 3, 2, 7, 6, 5, 4, 3, 2, 1)
CLINICAL_TYPES = (
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
)


def _seed(
    database: Database, settings: Settings, today: date = TODAY, world: World | None = None
) -> SeedSummary:
    return seed_demo_world(database, FhirConfig.load(settings), world=world, today=today)


def _source(organisation_key: str) -> str:
    """meta.source of what an organisation pushed: its Organization on our base."""
    return f"{BASE}/Organization/{organisation_key}"


def _patient_of(stored: StoredRecords, cpr: str) -> dict[str, Any]:
    found = stored.resources(f"Patient?identifier={CPR_SYSTEM}|{cpr}")
    assert len(found) == 1, cpr
    return found[0]


def _unversioned(reference: str) -> str:
    return reference.split("/_history/")[0]


def _fact_tags(resource: dict[str, Any]) -> list[str]:
    return [t["code"] for t in resource["meta"].get("tag", []) if t["system"] == FACT_SYSTEM]


def test_the_world_loads_on_an_empty_database(database: Database, settings: Settings) -> None:
    world = load_world()
    summary = _seed(database, settings)

    pushes = world_pushes(world)
    assert summary.pushes_skipped == 0
    assert summary.pushes_loaded == len(pushes) == 20
    assert summary.citizens == len(world.citizens) == 10
    assert summary.created["Organization"] == 4
    assert summary.created["Location"] == sum(
        len(o.locations) for o in world.organisations.values()
    )
    assert summary.created["Practitioner"] == summary.created["PractitionerRole"] == 8
    assert summary.created["Patient"] == 10
    assert summary.created["RelatedPerson"] == len(world.relations)
    assert summary.created["Provenance"] == len(pushes)
    for resource_type in CLINICAL_TYPES:
        assert summary.created.get(resource_type, 0) > 0, resource_type


def test_the_world_has_what_the_demo_promises() -> None:
    world = load_world()
    kinds = [o.kind for o in world.organisations.values()]

    assert sorted(kinds) == ["gp", "gp", "hospital", "hospital"]
    assert {c.role for c in world.clinicians.values()} == {"doctor", "nurse"}
    for citizen in world.citizens.values():
        kinds_holding = {world.organisations[key].kind for key in citizen.organisations}
        assert kinds_holding == {"gp", "hospital"}, citizen.person.key


def test_every_citizen_has_one_patient_with_their_cpr_and_every_source_id(
    database: Database, settings: Settings, stored: StoredRecords
) -> None:
    _seed(database, settings)
    world = load_world()

    assert len(stored.resources("Patient?_count=100")) == len(world.citizens)
    for citizen in world.citizens.values():
        person = citizen.person
        patient = _patient_of(stored, person.cpr)
        assert patient["name"][0]["family"] == person.family
        assert patient["birthDate"] == person.birth_date.isoformat()
        # Each organisation's own id of its Patient is kept on the citizen's one Patient.
        systems = {i["system"] for i in patient["identifier"]}
        for key in citizen.organisations:
            assert f"{_source(key)}/patient-id" in systems, (person.key, key)


def test_each_record_mixes_hospital_and_gp_data_each_naming_its_source(
    database: Database, settings: Settings, stored: StoredRecords
) -> None:
    _seed(database, settings)
    world = load_world()
    kinds = {_source(key): o.kind for key, o in world.organisations.items()}

    for citizen in world.citizens.values():
        record = stored.record(_patient_of(stored, citizen.person.cpr)["id"])
        clinical = [r for r in record if r["resourceType"] in CLINICAL_TYPES]
        sources = {r["meta"]["source"] for r in clinical}
        assert sources == {_source(key) for key in citizen.organisations}, citizen.person.key
        assert {kinds[source] for source in sources} == {"gp", "hospital"}
        for encounter in (r for r in clinical if r["resourceType"] == "Encounter"):
            # The conditional reference in the push was resolved on the way in, to the
            # organisation that pushed it.
            organisation = encounter["serviceProvider"]["reference"]
            assert (
                _source(organisation.removeprefix("Organization/")) == encounter["meta"]["source"]
            )


def test_every_push_has_a_provenance_naming_what_it_wrote(
    database: Database, settings: Settings, stored: StoredRecords
) -> None:
    summary = _seed(database, settings)
    world = load_world()

    assert len(stored.resources("Provenance?_count=1000")) == summary.pushes_loaded
    for citizen in world.citizens.values():
        patient = _patient_of(stored, citizen.person.cpr)
        record = stored.record(patient["id"])
        provenances = [r for r in record if r["resourceType"] == "Provenance"]
        by_source: dict[str, set[str]] = defaultdict(set)
        for resource in record:
            if resource["resourceType"] not in ("Patient", "Provenance"):
                reference = f"{resource['resourceType']}/{resource['id']}"
                by_source[resource["meta"]["source"]].add(reference)

        assert len(provenances) == len(citizen.organisations), citizen.person.key
        for provenance in provenances:
            (agent,) = provenance["agent"]
            organisation = agent["who"]["reference"]
            source = _source(organisation.removeprefix("Organization/"))
            assert provenance["meta"]["source"] == source
            targets = {_unversioned(t["reference"]) for t in provenance["target"]}
            assert f"Patient/{patient['id']}" in targets
            assert targets - {f"Patient/{patient['id']}"} == by_source[source]


def test_loading_twice_creates_nothing_new(
    database: Database, settings: Settings, stored: StoredRecords
) -> None:
    first = _seed(database, settings)
    versions = {p["id"]: p["meta"]["versionId"] for p in stored.resources("Patient?_count=100")}
    again = _seed(database, settings)
    # Restarted weeks later, the demo still recognises its world.
    later = _seed(database, settings, today=TODAY + timedelta(weeks=6))

    assert first.total > 0
    for summary in (again, later):
        assert summary.created == {}
        assert summary.clients_registered == 0
        assert summary.pushes_loaded == 0
        assert summary.pushes_skipped == first.pushes_loaded
    assert {
        p["id"]: p["meta"]["versionId"] for p in stored.resources("Patient?_count=100")
    } == versions
    assert len(stored.resources("Provenance?_count=1000")) == first.pushes_loaded
    assert len(stored.resources("Organization?_count=100")) == 4
    assert len(stored.resources("Practitioner?_count=100")) == 8


def test_a_changed_world_is_pushed_again_as_new_versions_not_copies(
    database: Database, settings: Settings, stored: StoredRecords
) -> None:
    first = _seed(database, settings)
    counts = {t: len(stored.resources(f"{t}?_count=1000")) for t in CLINICAL_TYPES}
    changed = dataclasses.replace(load_world(), digest="world.json was edited")

    again = _seed(database, settings, world=changed)

    assert again.pushes_loaded == first.pushes_loaded
    # Only the new pushes' own Provenance is new: everything else is a new version.
    assert again.created == {"Provenance": first.pushes_loaded}
    assert {t: len(stored.resources(f"{t}?_count=1000")) for t in CLINICAL_TYPES} == counts
    patients = stored.resources("Patient?_count=100")
    assert len(patients) == 10
    assert all(int(p["meta"]["versionId"]) > 1 for p in patients)


def test_a_vaccination_from_the_gp_and_the_hospital_is_one_linked_fact(
    database: Database, settings: Settings, stored: StoredRecords
) -> None:
    _seed(database, settings)
    world = load_world()
    camilla = world.citizens["camilla"]
    patient = _patient_of(stored, camilla.person.cpr)

    immunizations = stored.resources(f"Immunization?patient=Patient/{patient['id']}&_count=100")
    by_fact: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for immunization in immunizations:
        for tag in _fact_tags(immunization):
            by_fact[tag].append(immunization)
    linked = [copies for copies in by_fact.values() if len(copies) > 1]

    assert len(linked) == 1
    (copies,) = linked
    assert {c["meta"]["source"] for c in copies} == {_source("fjordlys"), _source("nordhavn")}
    given, reported = sorted(copies, key=lambda c: not c["primarySource"])
    assert given["meta"]["source"] == _source("fjordlys") and given["performer"]
    assert reported["reportOrigin"]["text"] == "Oplyst af egen læge"
    assert given["vaccineCode"] == reported["vaccineCode"]
    assert given["occurrenceDateTime"][:10] == reported["occurrenceDateTime"][:10]
    # Found by the tag, the fact comes with both its sources.
    tag = _fact_tags(given)[0]
    assert len(stored.resources(f"Immunization?_tag={FACT_SYSTEM}|{tag}")) == 2


def test_a_parent_with_a_child_and_an_elderly_citizen_with_a_relative(
    database: Database, settings: Settings, stored: StoredRecords
) -> None:
    _seed(database, settings)
    world = load_world()

    def age(born: date) -> int:
        return TODAY.year - born.year - ((TODAY.month, TODAY.day) < (born.month, born.day))

    authorities = set()
    for relation in world.relations:
        citizen = world.citizens[relation.citizen].person
        relative = world.person(relation.relative)
        patient = _patient_of(stored, citizen.cpr)
        (related,) = stored.resources(f"RelatedPerson?identifier={CPR_SYSTEM}|{relative.cpr}")
        codes = {c["code"] for r in related["relationship"] for c in r["coding"]}

        assert related["patient"]["reference"] == f"Patient/{patient['id']}"
        assert relation.relationship in codes
        authorities.add(relation.authority)
        if relation.authority == "parental-custody":
            assert "GUARD" in codes
            assert age(citizen.birth_date) < 15
            # The parent is a citizen with a record of their own.
            assert _patient_of(stored, relative.cpr)["id"] != patient["id"]
        else:
            assert "POWATT" in codes
            assert age(citizen.birth_date) >= 80
    assert authorities == {"parental-custody", "power-of-attorney"}


def test_contacts_take_place_at_the_organisations_locations(
    database: Database, settings: Settings, stored: StoredRecords
) -> None:
    _seed(database, settings)

    locations = {f"Location/{x['id']}": x for x in stored.resources("Location?_count=100")}
    roles = stored.resources("PractitionerRole?_count=100")
    assert len(roles) == 8
    for role in roles:
        managing = locations[role["location"][0]["reference"]]["managingOrganization"]
        assert managing["reference"] == role["organization"]["reference"]
    encounters = stored.resources("Encounter?_count=1000")
    assert encounters
    for encounter in encounters:
        location = locations[encounter["location"][0]["location"]["reference"]]
        assert location["managingOrganization"] == {
            "reference": encounter["serviceProvider"]["reference"],
            "display": encounter["serviceProvider"]["display"],
        }


def test_appointments_are_booked_ahead_of_the_load_date(
    database: Database, settings: Settings, stored: StoredRecords
) -> None:
    _seed(database, settings)

    appointments = stored.resources("Appointment?_count=100")
    ahead = [a for a in appointments if datetime.fromisoformat(a["start"]).date() > TODAY]
    assert ahead
    assert {a["status"] for a in ahead} == {"booked"}


def test_discharge_letters_are_readable_danish_text(
    database: Database, settings: Settings, stored: StoredRecords
) -> None:
    _seed(database, settings)

    letters = stored.resources("DocumentReference?_count=100")
    assert letters
    for letter in letters:
        attachment = letter["content"][0]["attachment"]
        text = base64.b64decode(attachment["data"]).decode("utf-8")
        assert text.startswith("Epikrise: ")
        assert "Med venlig hilsen" in text
        assert letter["subject"]["reference"].startswith("Patient/")


def _bundles(today: date) -> list[dict[str, Any]]:
    world = load_world()
    return [citizen_bundle(world, p.citizen, p.organisation, today) for p in world_pushes(world)]


def test_generation_is_deterministic() -> None:
    assert [orjson.dumps(b) for b in _bundles(TODAY)] == [orjson.dumps(b) for b in _bundles(TODAY)]


def test_a_later_load_pushes_the_same_resources_and_what_happened_since() -> None:
    def resources(today: date) -> dict[str, dict[str, Any]]:
        return {e["fullUrl"]: e["resource"] for b in _bundles(today) for e in b["entry"]}

    earlier, later = resources(TODAY), resources(TODAY + timedelta(days=400))

    # The same source ids, so a re-push makes new versions of them, never copies.
    assert earlier.keys() < later.keys()
    for full_url, resource in earlier.items():
        assert later[full_url]["resourceType"] == resource["resourceType"]
        if resource["resourceType"] == "Immunization" and resource["occurrenceDateTime"] < "2025":
            # A dose long given is the same dose, on the same day.
            assert later[full_url] == resource


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
