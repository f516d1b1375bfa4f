"""The timeline arranged from the index (results read per page) equals the timeline of
the record read whole: every page, under every filter, with facts two sources reported
and results without a contact of their own."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from health.access.actor import Actor
from health.db.engine import Database
from health.db.repository import Repository
from health.fhir.bundle_request import parse_bundle
from health.fhir.config import FhirConfig
from health.fhir.interactions import Interactions
from health.ingest.bulk import source_actor
from health.ingest.pipeline import push_bundle
from health.portal.record import CitizenRecords, citizen_actor, find_patient_ids
from health.portal.timeline import (
    KINDS,
    TIMELINE_TYPES,
    ShapedTimeline,
    Timeline,
    outline_results,
    page_of,
    read_timeline,
    shape_timeline,
)
from health.seed.load import seed_demo_world
from health.settings import Settings

NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)
ERIK = "1406580991"
SSN = "http://hl7.org/fhir/sid/us-ssn"
PER_PAGE = 7


@pytest.fixture
def config(database: Database, settings: Settings) -> FhirConfig:
    config = FhirConfig.load(settings)
    seed_demo_world(database, config)
    return config


def _push(database: Database, config: FhirConfig, source: str, bundle: dict[str, Any]) -> None:
    with database.session(write=True) as session:
        interactions = Interactions(Repository(session, source_actor(source, source)), config)
        base = config.settings.fhir_base_url
        parsed = parse_bundle(bundle, config.types, base=base, max_entries=10_000)
        push_bundle(interactions, parsed, base=base, prefer=None)


def _records(session: Any, config: FhirConfig, national_id: str) -> CitizenRecords:
    systems = config.settings.national_id_systems
    patient_ids = find_patient_ids(session, national_id, systems)
    assert patient_ids, national_id
    actor: Actor = citizen_actor(patient_ids[0], national_id, "citizen")
    return CitizenRecords(session, actor, patient_ids, config=config)


def _whole(records: CitizenRecords) -> ShapedTimeline:
    """The timeline as it was shaped before the outline: from the record read whole."""
    record = records.load(types=(*TIMELINE_TYPES, "Observation"), disclose=False)
    return shape_timeline(record, now=NOW)


def _seen(page: Timeline) -> Any:
    """Everything a page shows, as plain values."""
    return (
        page.total,
        page.page,
        page.pages,
        [(source.key, source.name) for source in page.sources],
        [event.key for event in page.life_events],
        [
            (
                contact.key,
                contact.title,
                contact.reason,
                contact.place,
                contact.start,
                contact.life_event.key if contact.life_event else None,
                sorted(contact.source_keys),
                [
                    (
                        h.kind,
                        h.action,
                        h.title,
                        h.detail,
                        h.abnormal,
                        h.when,
                        h.link,
                        [(r.source.key, r.resource.get("id")) for r in h.entry.reports],
                    )
                    for h in contact.happenings
                ],
            )
            for contact in page.contacts
        ],
    )


def _assert_same_timeline(records: CitizenRecords) -> int:
    """Compares every page under every filter; returns how many results were pending."""
    whole = _whole(records)
    outlined, _ = read_timeline(records, NOW)
    pending = sum(len(c.pending.ids) for c in outlined.contacts if c.pending)
    read = lambda ids: records.look_up("Observation", ids)  # noqa: E731
    events = [None, *(event.key for event in whole.life_events[:3])]
    sources = [None, *(source.key for source in whole.sources)]
    for source in sources:
        for kind in (None, *KINDS):
            for event in events:
                filters = {"source": source, "kind": kind, "event": event}
                first = page_of(whole, **filters, per_page=PER_PAGE)
                for number in range(1, first.pages + 1):
                    expected = page_of(whole, **filters, page=number, per_page=PER_PAGE)
                    got = page_of(
                        outlined, **filters, page=number, per_page=PER_PAGE, read_results=read
                    )
                    assert _seen(got) == _seen(expected), (filters, number)
    return pending


def test_the_demo_citizens_timelines_are_unchanged(database: Database, config: FhirConfig) -> None:
    with database.session(write=False) as session:
        assert _assert_same_timeline(_records(session, config, ERIK)) > 0


def _synthea_patient(shared_data: Path) -> tuple[dict[str, Any], str]:
    folder = shared_data / "synthea/smart-r4-synthea-2019"
    path = folder / "Antonio_Castellanos_6d2eba67-5b4a-403f-a29f-e6da3f1ea963.json"
    bundle = json.loads(path.read_bytes())
    patient = next(
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"
    )
    ssn = next(i["value"] for i in patient["identifier"] if i.get("system") == SSN)
    return bundle, ssn


def _loose_results(ssn: str, encounter_id: str) -> dict[str, Any]:
    """Results without a contact of their own: none named, another source's Encounter,
    an Encounter that does not exist."""
    patient = {"reference": "urn:uuid:7d1c0000-0000-4000-8000-000000000001"}

    def observation(number: int, **extra: Any) -> dict[str, Any]:
        return {
            "fullUrl": f"urn:uuid:7d1c0000-0000-4000-8000-00000000001{number}",
            "resource": {
                "resourceType": "Observation",
                "status": "final",
                "code": {
                    "coding": [{"system": "http://loinc.org", "code": "1988-5"}],
                    "text": "CRP",
                },
                "subject": patient,
                "effectiveDateTime": f"2019-0{number}-02T08:30:00+02:00",
                "valueQuantity": {"value": 3 + number, "unit": "mg/L"},
                **extra,
            },
            "request": {"method": "POST", "url": "Observation"},
        }

    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": patient["reference"],
                "resource": {
                    "resourceType": "Patient",
                    "identifier": [{"system": SSN, "value": ssn}],
                },
                "request": {"method": "POST", "url": "Patient"},
            },
            observation(1),
            observation(2, encounter={"reference": f"Encounter/{encounter_id}"}),
            observation(3, encounter={"reference": "Encounter/not-there"}),
            observation(4, issued="2019-04-03T10:00:00Z"),
        ],
    }
    # Known by when it was issued only.
    del bundle["entry"][4]["resource"]["effectiveDateTime"]
    return bundle


def test_a_record_two_sources_pushed_is_unchanged(
    database: Database, config: FhirConfig, shared_data: Path
) -> None:
    bundle, ssn = _synthea_patient(shared_data)
    _push(database, config, "nordhavn", copy.deepcopy(bundle))
    _push(database, config, "sondergade", bundle)
    with database.session(write=False) as session:
        records = _records(session, config, ssn)
        encounters = records.load(types=("Encounter",), disclose=False).of_type("Encounter")
    nordhavn = next(e["id"] for e in encounters if "nordhavn" in e["meta"]["source"])
    _push(database, config, "sondergade", _loose_results(ssn, nordhavn))
    with database.session(write=False) as session:
        records = _records(session, config, ssn)
        _, weight = read_timeline(records, NOW)
        assert weight == len(
            records.load(types=(*TIMELINE_TYPES, "Observation"), disclose=False).resources
        )
        assert _assert_same_timeline(records) > 50


def test_results_are_read_only_for_the_contacts_a_page_shows(
    database: Database, config: FhirConfig
) -> None:
    with database.session(write=False) as session:
        records = _records(session, config, ERIK)
        outlined, _ = read_timeline(records, NOW)
        asked: list[list[str]] = []

        def read(ids: Any) -> list[dict[str, Any]]:
            asked.append(list(ids))
            return records.look_up("Observation", ids)

        page = page_of(outlined, per_page=2, read_results=read)
        shown = {c.key for c in page.contacts}
        pending = {
            i for c in outlined.contacts if c.key in shown and c.pending for i in c.pending.ids
        }
        assert len(asked) <= 1 and set(asked[0] if asked else ()) == pending
        with pytest.raises(ValueError):
            page_of(outlined, per_page=len(outlined.contacts))


def test_results_are_placed_by_their_groups_and_facts() -> None:
    """Placement from index groups alone (no database): a result goes with its one
    Encounter when that is a contact; with two different Encounters, or one that is not
    a contact, it is read whole; a fact's copies go where the first copy goes."""
    north = "https://health.example/fhir/Organization/north"
    south = "https://health.example/fhir/Organization/south"
    groups = [
        (("Encounter", "visit-1", north), ["a", "twice", "copy-1"]),
        (("Encounter", "visit-2", south), ["b", "twice", "copy-2"]),
        (("Encounter", "gone", north), ["c"]),
        ((None, None, north), ["d"]),
    ]
    placed = outline_results(
        groups, [("fact", "copy-1"), ("fact", "copy-2")], {"visit-1", "visit-2"}
    )
    assert placed.at_contacts["visit-1"].ids == ("a", "copy-1", "copy-2")
    assert placed.at_contacts["visit-1"].source_keys == {"Organization/north", "Organization/south"}
    assert placed.at_contacts["visit-2"].ids == ("b",)
    assert placed.at_contacts["visit-2"].source_keys == {"Organization/south"}
    assert placed.loose == ["c", "d", "twice"]
    assert placed.count == 7
    assert placed.source_urls == {north, south}
