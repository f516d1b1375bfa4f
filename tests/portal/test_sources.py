"""Where entries came from: one entry per fact, naming every source that reported it."""

from __future__ import annotations

from health.ingest.facts import FACT_SYSTEM
from health.portal.record import Record
from health.portal.sources import merge_facts, record_sources, source_of

BASE = "http://testserver/fhir"


def _immunization(resource_id: str, source: str, fact: str | None) -> dict[str, object]:
    meta: dict[str, object] = {
        "source": f"{BASE}/Organization/{source}",
        "lastUpdated": "2024-01-02T10:00:00Z",
    }
    if fact:
        meta["tag"] = [{"system": FACT_SYSTEM, "code": fact}]
    return {"resourceType": "Immunization", "id": resource_id, "meta": meta}


RECORD = Record.of(
    "p1",
    [
        {"resourceType": "Patient", "id": "p1"},
        {"resourceType": "Organization", "id": "gp", "name": "Lægehuset"},
        {"resourceType": "Organization", "id": "hospital", "name": "Nordhavn Hospital"},
        _immunization("a", "gp", "fact-1"),
        _immunization("b", "hospital", "fact-1"),
        _immunization("c", "hospital", None),
    ],
)


def test_a_fact_from_two_sources_is_one_entry_naming_both() -> None:
    entries = merge_facts(RECORD.of_type("Immunization"), RECORD)
    assert [e.id for e in entries] == ["a", "c"]
    assert [s.name for s in entries[0].sources] == ["Lægehuset", "Nordhavn Hospital"]
    assert entries[0].reports[1].received is not None
    assert [s.name for s in entries[1].sources] == ["Nordhavn Hospital"]


def test_sources_are_named_from_the_directory_or_by_their_url() -> None:
    assert source_of(RECORD.of_type("Immunization")[0], RECORD).name == "Lægehuset"
    stranger = {"meta": {"source": "https://elsewhere.example/system"}}
    assert source_of(stranger, RECORD).name == "https://elsewhere.example/system"
    assert [s.key for s in record_sources(RECORD)] == ["Organization/gp", "Organization/hospital"]
