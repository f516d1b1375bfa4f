"""The timeline over the demo world's shapes: contacts, what happened, life events, filters."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from health.portal.life_events import group_life_events, load_rules
from health.portal.record import Record
from health.portal.timeline import build_timeline, page_of, shape_timeline, shown_keys

GP = "http://testserver/fhir/Organization/gp"
HOSPITAL = "http://testserver/fhir/Organization/hospital"
NOW = datetime(2024, 6, 1, tzinfo=UTC)
DIABETES = {
    "coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "E11.9"}],
    "text": "Type 2-diabetes",
}


def _record() -> Record:
    return Record.of(
        "p1",
        [
            {"resourceType": "Patient", "id": "p1"},
            {"resourceType": "Organization", "id": "gp", "name": "Lægehuset"},
            {"resourceType": "Organization", "id": "hospital", "name": "Nordhavn Hospital"},
            {
                "resourceType": "Condition",
                "id": "dm",
                "meta": {"source": GP},
                "code": DIABETES,
                "clinicalStatus": {"coding": [{"code": "active"}]},
                "onsetDateTime": "2015-03-10",
            },
            {
                "resourceType": "Encounter",
                "id": "checkup",
                "meta": {"source": GP},
                "class": {"code": "AMB"},
                "type": [{"text": "Kontrolbesøg"}],
                "reasonCode": [DIABETES],
                "period": {"start": "2023-05-02T10:00:00+02:00"},
            },
            {
                "resourceType": "Observation",
                "id": "hba1c",
                "meta": {"source": GP},
                "code": {
                    "coding": [{"system": "http://loinc.org", "code": "59261-8"}],
                    "text": "HbA1c",
                },
                "encounter": {"reference": "Encounter/checkup"},
                "effectiveDateTime": "2023-05-02T10:00:00+02:00",
                "valueQuantity": {"value": 58, "unit": "mmol/mol"},
                "referenceRange": [{"low": {"value": 20}, "high": {"value": 48}}],
            },
            {
                "resourceType": "Encounter",
                "id": "stay",
                "meta": {"source": HOSPITAL},
                "class": {"code": "IMP"},
                "type": [{"text": "Indlæggelse"}],
                "reasonCode": [{"text": "Hofteprotese"}],
                "period": {
                    "start": "2022-03-14T10:00:00+01:00",
                    "end": "2022-03-17T12:00:00+01:00",
                },
            },
            {
                "resourceType": "MedicationRequest",
                "id": "metformin",
                "meta": {"source": GP},
                "status": "active",
                "medicationCodeableConcept": {"text": "Metformin"},
                "authoredOn": "2015-03-20",
                "dosageInstruction": [{"text": "2 x 2"}],
            },
        ],
    )


def test_results_are_shown_at_their_contact_and_flagged_when_abnormal() -> None:
    timeline = build_timeline(_record(), now=NOW)
    checkup = next(c for c in timeline.contacts if c.key == "checkup")
    [result] = checkup.happenings
    assert (result.kind, result.title, result.detail, result.abnormal) == (
        "results",
        "HbA1c",
        "58 mmol/mol",
        True,
    )
    assert result.link == "59261-8"


def test_contacts_are_newest_first_and_unlinked_things_get_a_day_of_their_own() -> None:
    timeline = build_timeline(_record(), now=NOW)
    assert [c.key for c in timeline.contacts][:2] == ["checkup", "stay"]
    started = [c for c in timeline.contacts if c.entry is None]
    kinds = {(h.kind, h.action) for c in started for h in c.happenings}
    assert ("medications", "started") in kinds and ("diagnoses", "") in kinds
    assert all(c.source is not None and c.source.name == "Lægehuset" for c in started)


def test_contacts_are_grouped_into_life_events_by_the_rules() -> None:
    events = {e.kind: e for e in group_life_events(_record(), now=NOW)}
    assert events["chronic-illness"].encounter_ids == ["checkup"]
    assert events["chronic-illness"].title == "Type 2-diabetes"
    assert events["hospital-stay"].encounter_ids == ["stay"]


def test_the_rules_are_data(tmp_path: Path) -> None:
    rules_file = tmp_path / "rules.toml"
    rules_file.write_text(
        '[[rule]]\nkind = "hospital-stay"\nanchor = "Encounter"\nclasses = ["AMB"]\n'
    )
    events = group_life_events(_record(), load_rules(rules_file), now=NOW)
    assert [(e.kind, e.encounter_ids) for e in events] == [("hospital-stay", ["checkup"])]


def test_filters_by_source_kind_and_event() -> None:
    record = _record()
    hospital = build_timeline(record, source="Organization/hospital", now=NOW)
    assert [c.key for c in hospital.contacts] == ["stay"]
    results = build_timeline(record, kind="results", now=NOW)
    assert [c.key for c in results.contacts] == ["checkup"]
    illness = next(e for e in results.life_events if e.kind == "chronic-illness")
    assert [c.key for c in build_timeline(record, event=illness.key, now=NOW).contacts] == [
        "checkup"
    ]


def test_pages() -> None:
    timeline = build_timeline(_record(), per_page=1, page=2, now=NOW)
    assert (timeline.page, timeline.pages, len(timeline.contacts)) == (2, timeline.total, 1)


def test_pages_are_cut_from_one_shaped_timeline_that_filters_leave_alone() -> None:
    shaped = shape_timeline(_record(), now=NOW)
    everything = [c.key for c in shaped.contacts]
    assert len(everything) == 4
    pages = [page_of(shaped, page=n, per_page=3) for n in (1, 2, 3)]
    assert [c.key for p in pages[:2] for c in p.contacts] == everything
    assert [len(p.contacts) for p in pages] == [3, 1, 1]
    assert [(p.page, p.pages, p.total) for p in pages] == [(1, 2, 4), (2, 2, 4), (2, 2, 4)]
    assert page_of(shaped, page=0, per_page=3).page == 1
    gp = page_of(shaped, source="Organization/gp", kind="results")
    assert [[h.kind for h in c.happenings] for c in gp.contacts] == [["results"]]
    # The filter narrowed copies: the shaped timeline still holds every happening.
    assert sum(len(c.happenings) for c in shaped.contacts) == sum(
        len(c.happenings) for c in build_timeline(_record(), now=NOW).contacts
    )


def test_a_page_shows_its_contacts_what_happened_there_and_the_life_events() -> None:
    shaped = shape_timeline(_record(), now=NOW)
    first = page_of(shaped, page=1, per_page=1)
    assert [c.key for c in first.contacts] == ["checkup"]
    assert shown_keys(first) == {
        "Encounter/checkup",
        "Observation/hba1c",
        # Life events are named from their anchors, listed on every page.
        "Condition/dm",
        "Encounter/stay",
    }
    second = page_of(shaped, page=2, per_page=1)
    assert "Observation/hba1c" not in shown_keys(second)
