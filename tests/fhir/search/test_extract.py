"""Search index rows extracted from resources, by parameter type.

https://hl7.org/fhir/R4/search.html#ptypes: what a search on each parameter type
compares, and so what each FHIR type contributes to the index.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from health import PROJECT_ROOT
from health.access.attribution import attributed
from health.fhir.search.dates import FAR_FUTURE, FAR_PAST
from health.fhir.search.definitions import SearchDefinitions
from health.fhir.search.extract import Extractor
from health.fhir.search.index_rows import IndexRows
from health.fhir.search.paths import compile_expression

BASE = "https://health.example/fhir"


@pytest.fixture(scope="module")
def definitions() -> SearchDefinitions:
    return SearchDefinitions(PROJECT_ROOT / "fhir")


@pytest.fixture(scope="module")
def extractor(definitions: SearchDefinitions) -> Extractor:
    return Extractor(definitions, BASE)


def rows_of(rows: list[tuple[Any, ...]], param: str) -> list[tuple[Any, ...]]:
    return [row[1:] for row in rows if row[0] == param]


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


# token


def test_codeable_concept_gives_each_coding_and_its_text(extractor: Extractor) -> None:
    rows = extractor.extract(
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {
                "coding": [
                    {"system": "http://loinc.org", "code": "8302-2", "display": "Body Height"},
                    {"system": "urn:local", "code": "H"},
                ],
                "text": "Højde målt stående",
            },
        }
    )
    assert rows_of(rows.tokens, "code") == [
        ("http://loinc.org", "8302-2", "body height"),
        ("urn:local", "H", None),
        (None, None, "højde malt staende"),
    ]
    # A code element has its value set's system implicitly: the bare code is searched.
    assert rows_of(rows.tokens, "status") == [(None, "final", None)]


def test_text_that_repeats_a_display_is_not_a_row_of_its_own(extractor: Extractor) -> None:
    rows = extractor.extract(
        {
            "resourceType": "Condition",
            "code": {
                "coding": [{"system": "http://snomed.info/sct", "code": "1", "display": "Asthma"}],
                "text": "asthma",
            },
        }
    )
    assert rows_of(rows.tokens, "code") == [("http://snomed.info/sct", "1", "asthma")]


def test_coding_and_boolean_tokens(extractor: Extractor) -> None:
    encounter = extractor.extract(
        {
            "resourceType": "Encounter",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        }
    )
    assert rows_of(encounter.tokens, "class") == [
        ("http://terminology.hl7.org/CodeSystem/v3-ActCode", "AMB", None)
    ]
    patient = extractor.extract({"resourceType": "Patient", "active": False})
    assert rows_of(patient.tokens, "active") == [(None, "false", None)]


def test_identifiers_and_their_types_for_of_type(extractor: Extractor) -> None:
    rows = extractor.extract(
        {
            "resourceType": "Patient",
            "identifier": [
                {
                    "system": "urn:oid:1.2.208.176.1.2",
                    "value": "0101011234",
                    "type": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                "code": "NI",
                            }
                        ]
                    },
                },
                {"value": "no-system"},
                {"type": {"text": "neither system nor value"}},
            ],
        }
    )
    assert rows_of(rows.tokens, "identifier") == [
        ("urn:oid:1.2.208.176.1.2", "0101011234", None),
        (None, "no-system", None),
    ]
    assert rows_of(rows.tokens, "identifier:of-type") == [
        ("http://terminology.hl7.org/CodeSystem/v2-0203|NI", "0101011234", None)
    ]


def test_identifiers_credited_to_sources_are_also_rows_per_source(extractor: Extractor) -> None:
    """What a source's search by its own record number reads (health/access/source_search.py)."""
    cpr = {"system": "urn:oid:1.2.208.176.1.2", "value": "0101011234"}
    mrn = {"system": "urn:rh:mrn", "value": "RH-1"}
    rows = extractor.extract(
        {
            "resourceType": "Patient",
            "identifier": [
                attributed(cpr, ["Organization/north", "Organization/south"]),
                attributed(mrn, ["Organization/north"]),
                attributed({"value": "no-system"}, ["Organization/south"]),
                {"system": "urn:unattributed", "value": "1"},
            ],
        }
    )

    assert rows_of(rows.tokens, "identifier") == [
        ("urn:oid:1.2.208.176.1.2", "0101011234", None),
        ("urn:rh:mrn", "RH-1", None),
        (None, "no-system", None),
        ("urn:unattributed", "1", None),
    ]
    assert rows_of(rows.tokens, "identifier:reported-by") == [
        ("Organization/north|urn:oid:1.2.208.176.1.2", "0101011234", None),
        ("Organization/south|urn:oid:1.2.208.176.1.2", "0101011234", None),
        ("Organization/north|urn:rh:mrn", "RH-1", None),
        ("Organization/south|", "no-system", None),
    ]


def test_a_type_without_search_parameters_still_indexes_its_identifiers(
    extractor: Extractor,
) -> None:
    # Conditional create/update/delete and conditional references match `identifier`
    # on every type, indexed or not.
    rows = extractor.extract(
        {"resourceType": "Basic", "identifier": [{"system": "urn:s", "value": "v"}]}
    )
    assert rows.tokens == [("identifier", "urn:s", "v", None)]


def test_contact_points_by_value_with_their_system(extractor: Extractor) -> None:
    rows = extractor.extract(
        {
            "resourceType": "Patient",
            "telecom": [
                {"system": "phone", "value": "+45 12 34 56 78"},
                {"system": "email", "value": "Anna@Example.dk"},
            ],
        }
    )
    assert rows_of(rows.tokens, "email") == [("email", "Anna@Example.dk", None)]
    assert rows_of(rows.tokens, "phone") == [("phone", "+45 12 34 56 78", None)]
    assert len(rows_of(rows.tokens, "telecom")) == 2


def test_deceased_through_the_fhirpath_engine(extractor: Extractor) -> None:
    dead = extractor.extract({"resourceType": "Patient", "deceasedDateTime": "2020-05-01"})
    assert rows_of(dead.tokens, "deceased") == [(None, "true", None)]
    assert rows_of(dead.dates, "death-date") == [(utc(2020, 5, 1), utc(2020, 5, 2))]
    alive = extractor.extract({"resourceType": "Patient"})
    assert rows_of(alive.tokens, "deceased") == [(None, "false", None)]


# string


def test_human_names_are_searchable_by_every_part_without_accents(extractor: Extractor) -> None:
    rows = extractor.extract(
        {
            "resourceType": "Patient",
            "name": [
                {
                    "family": "Sørensen-Lindé",
                    "given": ["José", "Ærlig"],
                    "prefix": ["Dr."],
                    "suffix": ["Jr."],
                    "text": "Dr. José Ærlig Sørensen-Lindé Jr.",
                }
            ],
        }
    )
    assert rows_of(rows.strings, "family") == [("sørensen-linde", "Sørensen-Lindé")]
    assert rows_of(rows.strings, "given") == [("jose", "José"), ("ærlig", "Ærlig")]
    assert rows_of(rows.strings, "name") == [
        ("sørensen-linde", "Sørensen-Lindé"),
        ("jose", "José"),
        ("ærlig", "Ærlig"),
        ("dr.", "Dr."),
        ("jr.", "Jr."),
        ("dr. jose ærlig sørensen-linde jr.", "Dr. José Ærlig Sørensen-Lindé Jr."),
    ]


def test_addresses_are_searchable_by_every_part(extractor: Extractor) -> None:
    rows = extractor.extract(
        {
            "resourceType": "Patient",
            "address": [
                {
                    "line": ["Åboulevarden 1", "2. tv."],
                    "city": "Århus C",
                    "district": "Midtjylland",
                    "state": "Region Midt",
                    "postalCode": "8000",
                    "country": "DK",
                }
            ],
        }
    )
    assert rows_of(rows.strings, "address") == [
        ("aboulevarden 1", "Åboulevarden 1"),
        ("2. tv.", "2. tv."),
        ("arhus c", "Århus C"),
        ("midtjylland", "Midtjylland"),
        ("region midt", "Region Midt"),
        ("8000", "8000"),
        ("dk", "DK"),
    ]
    assert rows_of(rows.strings, "address-city") == [("arhus c", "Århus C")]
    assert rows_of(rows.strings, "address-postalcode") == [("8000", "8000")]


# date


@pytest.mark.parametrize(
    ("value", "low", "high"),
    [
        ("1982", utc(1982, 1, 1), utc(1983, 1, 1)),
        ("1982-12", utc(1982, 12, 1), utc(1983, 1, 1)),
        ("1982-04-16", utc(1982, 4, 16), utc(1982, 4, 17)),
        ("9999", utc(9999, 1, 1), FAR_FUTURE),
    ],
)
def test_a_partial_date_covers_its_precision(
    extractor: Extractor, value: str, low: datetime, high: datetime
) -> None:
    rows = extractor.extract({"resourceType": "Patient", "birthDate": value})
    assert rows_of(rows.dates, "birthdate") == [(low, high)]


@pytest.mark.parametrize(
    ("value", "low", "width"),
    [
        ("2020-03-01T10:15:30Z", utc(2020, 3, 1, 10, 15, 30), timedelta(seconds=1)),
        ("2020-03-01T10:15:30+01:00", utc(2020, 3, 1, 9, 15, 30), timedelta(seconds=1)),
        ("2020-03-01T10:15:30.25-05:00", utc(2020, 3, 1, 15, 15, 30, 250000), timedelta(0, 0, 1e4)),
        # No time zone (invalid for a dateTime with a time, but read rather than dropped).
        ("2020-03-01T10:15:30", utc(2020, 3, 1, 10, 15, 30), timedelta(seconds=1)),
    ],
)
def test_a_date_time_covers_its_precision_in_utc(
    extractor: Extractor, value: str, low: datetime, width: timedelta
) -> None:
    rows = extractor.extract({"resourceType": "Condition", "recordedDate": value})
    assert rows_of(rows.dates, "recorded-date") == [(low, low + width)]
    assert rows.dates[0][1].utcoffset() == timedelta(0)


def test_periods_span_start_to_end_and_open_ends_are_far(extractor: Extractor) -> None:
    encounter = {"resourceType": "Encounter", "period": {"start": "2020-01-01", "end": "2020-02"}}
    rows = extractor.extract(encounter)
    assert rows_of(rows.dates, "date") == [(utc(2020, 1, 1), utc(2020, 3, 1))]
    rows = extractor.extract({**encounter, "period": {"start": "2020-01-01T08:00:00Z"}})
    assert rows_of(rows.dates, "date") == [(utc(2020, 1, 1, 8), FAR_FUTURE)]
    rows = extractor.extract({**encounter, "period": {"end": "2020"}})
    assert rows_of(rows.dates, "date") == [(FAR_PAST, utc(2021, 1, 1))]


def test_a_timing_covers_its_outer_limits(extractor: Extractor) -> None:
    plan = {
        "resourceType": "CarePlan",
        "activity": [
            {"detail": {"scheduledTiming": {"event": ["2020-01-31", "2020-03-24T08:00:00Z"]}}},
            {
                "detail": {
                    "scheduledTiming": {
                        "event": ["2020-04-01"],
                        "repeat": {"boundsPeriod": {"start": "2020-05-01", "end": "2020-05-02"}},
                    }
                }
            },
        ],
    }
    assert rows_of(extractor.extract(plan).dates, "activity-date") == [
        (utc(2020, 1, 31), utc(2020, 3, 24, 8, 0, 1)),
        (utc(2020, 4, 1), utc(2020, 5, 3)),
    ]


def test_timing_events_named_by_the_expression_are_rows_each(extractor: Extractor) -> None:
    # MedicationRequest.date is `dosageInstruction.timing.event`: the events themselves.
    request = {
        "resourceType": "MedicationRequest",
        "dosageInstruction": [{"timing": {"event": ["2020-01-31", "2020-03-24"]}}],
    }
    assert rows_of(extractor.extract(request).dates, "date") == [
        (utc(2020, 1, 31), utc(2020, 2, 1)),
        (utc(2020, 3, 24), utc(2020, 3, 25)),
    ]


def test_a_choice_of_date_and_period(extractor: Extractor) -> None:
    observation = {"resourceType": "Observation", "effectiveDateTime": "2021-06"}
    assert rows_of(extractor.extract(observation).dates, "date") == [
        (utc(2021, 6, 1), utc(2021, 7, 1))
    ]
    condition = {"resourceType": "Condition", "onsetPeriod": {"start": "2019"}}
    assert rows_of(extractor.extract(condition).dates, "onset-date") == [
        (utc(2019, 1, 1), FAR_FUTURE)
    ]


def test_unreadable_values_are_left_out_and_never_fail(extractor: Extractor) -> None:
    rows = extractor.extract(
        {
            "resourceType": "Observation",
            "effectiveDateTime": "yesterday",
            "issued": "2020-13-45T00:00:00Z",
            "valueQuantity": {"value": "lots", "unit": "mg"},
            "subject": {"reference": 42},
            "code": {"coding": "not a list of codings"},
        }
    )
    assert rows.dates == [] and rows.quantities == [] and rows.references == []


# reference


OTHER_SERVER = "https://other.example/fhir/Patient/p1"
BUNDLE_ENTRY = "urn:uuid:0b5c7a8e-8d1b-4a5e-9d8b-1c2b3a4d5e6f"


@pytest.mark.parametrize(
    ("reference", "row"),
    [
        ("Patient/p1", ("Patient", "p1", None)),
        ("Patient/p1/_history/3", ("Patient", "p1", None)),
        (f"{BASE}/Patient/p1", ("Patient", "p1", None)),
        (f"{BASE}/Patient/p1/_history/3", ("Patient", "p1", None)),
        (OTHER_SERVER, (None, None, OTHER_SERVER)),
        (BUNDLE_ENTRY, (None, None, BUNDLE_ENTRY)),
    ],
)
def test_references_local_by_type_and_id_others_by_url(
    extractor: Extractor, reference: str, row: tuple[str | None, ...]
) -> None:
    rows = extractor.extract({"resourceType": "Observation", "subject": {"reference": reference}})
    assert rows_of(rows.references, "subject") == [row]


def test_patient_references_only_for_a_where_resolve_parameter(extractor: Extractor) -> None:
    observation = {"resourceType": "Observation", "subject": {"reference": "Group/g1"}}
    rows = extractor.extract(observation)
    assert rows_of(rows.references, "subject") == [("Group", "g1", None)]
    assert rows_of(rows.references, "patient") == []
    rows = extractor.extract({**observation, "subject": {"reference": "Patient/p1"}})
    assert rows_of(rows.references, "patient") == [("Patient", "p1", None)]


def test_contained_and_identifier_only_references_are_not_indexed(extractor: Extractor) -> None:
    for subject in (
        {"reference": "#p"},
        {"identifier": {"system": "urn:oid:1.2.208.176.1.2", "value": "0101011234"}},
    ):
        rows = extractor.extract({"resourceType": "Observation", "subject": subject})
        assert rows.references == []


def test_a_canonical_reference_is_kept_as_its_url(extractor: Extractor) -> None:
    rows = extractor.extract(
        {
            "resourceType": "CarePlan",
            "instantiatesCanonical": ["http://example.org/PlanDefinition/diabetes"],
        }
    )
    assert rows_of(rows.references, "instantiates-canonical") == [
        (None, None, "http://example.org/PlanDefinition/diabetes")
    ]


# quantity, number, uri


def test_quantities_of_values_and_components(extractor: Extractor) -> None:
    rows = extractor.extract(
        {
            "resourceType": "Observation",
            "valueQuantity": {
                "value": 186,
                "unit": "cm",
                "system": "http://unitsofmeasure.org",
                "code": "cm",
            },
            "component": [{"valueQuantity": {"value": 80.5, "unit": "mmHg"}}],
        }
    )
    assert rows_of(rows.quantities, "value-quantity") == [
        (186.0, "http://unitsofmeasure.org", "cm", "cm")
    ]
    assert rows_of(rows.quantities, "component-value-quantity") == [(80.5, None, None, "mmHg")]
    assert len(rows_of(rows.quantities, "combo-value-quantity")) == 2


def test_age_and_duration_are_quantities(extractor: Extractor) -> None:
    condition = {"resourceType": "Condition", "onsetAge": {"value": 52, "code": "a"}}
    assert rows_of(extractor.extract(condition).quantities, "onset-age") == [
        (52.0, None, "a", None)
    ]
    encounter = {"resourceType": "Encounter", "length": {"value": 3, "unit": "d"}}
    assert rows_of(extractor.extract(encounter).quantities, "length") == [(3.0, None, None, "d")]


def test_money_numbers_and_uris(tmp_path: Path) -> None:
    # The official definitions for the indexed types have no Money or number parameter.
    document = {
        "resource_types": ["Claim", "Immunization"],
        "parameters": [
            {"code": "total", "base": ["Claim"], "type": "quantity", "expression": "Claim.total"},
            {
                "code": "dose",
                "base": ["Immunization"],
                "type": "number",
                "expression": "(Immunization.protocolApplied.doseNumber as positiveInt)",
            },
            {
                "code": "_profile",
                "base": ["Resource"],
                "type": "uri",
                "expression": "Resource.meta.profile",
            },
        ],
    }
    (tmp_path / "search-parameters.json").write_bytes(orjson.dumps(document))
    extractor = Extractor(SearchDefinitions(tmp_path), BASE)
    claim = extractor.extract(
        {
            "resourceType": "Claim",
            "total": {"value": 120.5, "currency": "DKK"},
            "meta": {"profile": ["http://example.org/StructureDefinition/claim"]},
        }
    )
    assert claim.quantities == [("total", 120.5, "urn:iso:std:iso:4217", "DKK", None)]
    assert claim.uris == [("_profile", "http://example.org/StructureDefinition/claim")]
    immunization = extractor.extract(
        {
            "resourceType": "Immunization",
            "protocolApplied": [{"doseNumberPositiveInt": 2}, {"doseNumberString": "booster"}],
        }
    )
    assert immunization.numbers == [("dose", 2.0)]


def test_resource_columns_are_not_indexed(extractor: Extractor) -> None:
    rows = extractor.extract(
        {"resourceType": "Patient", "id": "p1", "meta": {"lastUpdated": "2020-01-01T00:00:00Z"}}
    )
    assert rows == IndexRows(tokens=[("deceased", None, "false", None)])


# Every definition, every Synthea resource


def test_every_definition_compiles_and_few_need_the_engine(definitions: SearchDefinitions) -> None:
    fallback = []
    for resource_type in definitions.indexed_types:
        for code, parameter in definitions.for_type(resource_type).items():
            compiled = compile_expression(parameter.expression, resource_type)
            if not compiled.native:
                fallback.append(f"{resource_type}.{code}")
            else:
                assert compiled.branches, f"{resource_type}.{code} selects nothing"
    assert fallback == ["Patient.deceased"]


@pytest.mark.shared_data
def test_every_synthea_resource_extracts(shared_data: Path, extractor: Extractor) -> None:
    count = 0
    for path in sorted((shared_data / "synthea").rglob("*.json")):
        for entry in orjson.loads(path.read_bytes()).get("entry", []):
            rows = extractor.extract(entry["resource"])
            count += 1
            assert rows.tokens or rows.references, f"{path.name}: nothing indexed"
    assert count > 1000
