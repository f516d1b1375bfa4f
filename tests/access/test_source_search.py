"""A source's searches and conditions on the citizen's Patient (health/access/source_search.py).

Over HTTP with two sources: tests/ingest/test_pipeline.py. Here the rules one by one.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from health.access.attribution import attributed
from health.access.source_search import (
    check_condition,
    check_search,
    credited,
    shown_references,
)
from health.db.versions import StoredVersion
from health.fhir.config import FhirConfig
from health.fhir.errors import FhirError
from health.fhir.search.extract import REPORTED_BY
from health.fhir.search.params import Condition, SearchLimits, SearchRequest, parse_search
from health.settings import Settings

CPR = "urn:oid:1.2.208.176.1.2"
NATIONAL = [CPR]
NORTH, SOUTH = "Organization/north", "Organization/south"
LIMITS = SearchLimits(default_count=10, max_count=100)


@pytest.fixture(scope="module")
def config() -> FhirConfig:
    return FhirConfig.load(Settings())


def _request(config: FhirConfig, query: str) -> SearchRequest:
    resource_type, _, params = query.partition("?")
    pairs = [(name, value) for name, _, value in (p.partition("=") for p in params.split("&"))]
    return parse_search(
        resource_type, pairs, config.search, base_url="http://x/fhir", limits=LIMITS
    )


def _karen(*identifiers: dict[str, Any]) -> StoredVersion:
    body = {"resourceType": "Patient", "id": "karen", "identifier": list(identifiers)}
    return StoredVersion(
        resource_type="Patient",
        id="karen",
        version_id=1,
        last_updated=datetime.now(UTC),
        deleted=False,
        body=orjson.dumps(body),
    )


@pytest.mark.parametrize(
    "query",
    [
        f"Patient?identifier={CPR}|0101801234",
        f"Patient?identifier={CPR}|0101801234,{CPR}|0202802345",
        "Patient?family=Jensen&birthdate=1980-01-01",
        f"Observation?subject:Patient.identifier={CPR}|0101801234",
        f"Observation?subject.identifier={CPR}|0101801234",
        "Observation?code=http://loinc.org|718-7",
    ],
)
def test_searches_a_source_makes_as_written(config: FhirConfig, query: str) -> None:
    request = _request(config, query)

    assert check_search(request, NORTH, NATIONAL) == request


@pytest.mark.parametrize(
    ("query", "rewritten"),
    [
        ("Patient?identifier=urn:rh:mrn|RH-1", ["Organization/north|urn:rh:mrn"]),
        (
            "Patient?identifier=urn:rh:mrn|RH-1,urn:rh:old|7",
            ["Organization/north|urn:rh:mrn", "Organization/north|urn:rh:old"],
        ),
    ],
)
def test_a_search_by_another_identifier_reads_only_the_sources_own(
    config: FhirConfig, query: str, rewritten: list[str]
) -> None:
    """By its own record number: the index rows of the identifiers it reported."""
    (condition,) = check_search(_request(config, query), NORTH, NATIONAL).conditions

    assert isinstance(condition, Condition)
    assert condition.param == f"identifier{REPORTED_BY}"
    assert [v.system for v in condition.values] == rewritten
    assert condition.values[0].code == "RH-1"


def test_a_chain_into_patients_by_another_identifier_reads_only_the_sources_own(
    config: FhirConfig,
) -> None:
    query = "Observation?subject:Patient.identifier=urn:rh:mrn|RH-1&code=http://loinc.org|718-7"

    chained, by_code = check_search(_request(config, query), NORTH, NATIONAL).conditions

    assert isinstance(chained, Condition) and chained.chain is not None
    assert chained.chain.param == f"identifier{REPORTED_BY}"
    assert chained.chain.values[0].system == "Organization/north|urn:rh:mrn"
    assert by_code == _request(config, query).conditions[1]


@pytest.mark.parametrize(
    ("query", "rule"),
    [
        ("Patient?identifier=RH-1", "only as"),
        ("Patient?identifier=urn:rh:mrn|", "only as"),
        (f"Patient?identifier={CPR}|0101801234,urn:rh:mrn|RH-1", "separate searches"),
        (f"Patient?identifier:not={CPR}|0101801234", "only as"),
        ("Patient?identifier:of-type=http://x|MR|RH-1", "only as"),
        ("Patient?link=Patient/other", "only as"),
        ("Patient?general-practitioner=Organization/south", "only as"),
        ("Patient?_source=http://x/fhir/Organization/north", "only as"),
        ("Observation?subject.identifier=urn:rh:mrn|RH-1", "only through 'subject:Patient'"),
        ("Patient?_sort=identifier", "may not sort by"),
        ("Organization?_revinclude=Patient:general-practitioner", "may not revinclude by"),
        ("Organization?_revinclude=Patient:*", "may not revinclude by"),
        ("Organization?_has:Patient:general-practitioner:family=Jensen", "may not search through"),
    ],
)
def test_searches_a_source_may_not_make(config: FhirConfig, query: str, rule: str) -> None:
    with pytest.raises(FhirError) as refused:
        check_search(_request(config, query), NORTH, NATIONAL)

    assert refused.value.status == 403
    assert rule in refused.value.issues[0].diagnostics


@pytest.mark.parametrize(
    "include",
    ["Patient:general-practitioner", "Patient:organization:Organization", "Patient:*"],
)
def test_a_source_includes_from_the_patient_as_it_is_shown(
    config: FhirConfig, include: str
) -> None:
    """Forward, an include is read from the Patient the source is handed
    (`shown_references`, Repository.included), so it is not refused."""
    request = _request(config, f"Patient?identifier={CPR}|0101801234&_include={include}")

    assert check_search(request, NORTH, NATIONAL).includes == request.includes


def test_shown_references_reads_the_references_of_the_patient_it_is_given(
    config: FhirConfig,
) -> None:
    patient = {
        "resourceType": "Patient",
        "id": "karen",
        "generalPractitioner": [
            {"reference": "Organization/clinic"},
            {"reference": "Practitioner/dr-1/_history/2"},
            {"reference": "https://elsewhere.example/fhir/Organization/far"},
        ],
        "managingOrganization": {"reference": "Organization/north"},
        "link": [{"other": {"reference": "Patient/other"}, "type": "seealso"}],
    }
    version = dataclasses.replace(_karen(), body=orjson.dumps(patient))

    found = shown_references(config.extractor, version)

    assert sorted(found) == [
        ("general-practitioner", "Organization", "clinic"),
        ("general-practitioner", "Practitioner", "dr-1"),
        ("link", "Patient", "other"),
        ("organization", "Organization", "north"),
    ]
    assert shown_references(config.extractor, dataclasses.replace(version, body=None)) == []


def test_a_client_of_no_organization_searches_by_national_id_only(config: FhirConfig) -> None:
    check_search(_request(config, f"Patient?identifier={CPR}|0101801234"), "", NATIONAL)
    with pytest.raises(FhirError):
        check_search(_request(config, "Patient?identifier=urn:rh:mrn|RH-1"), "", NATIONAL)


def test_a_condition_may_name_an_identifier_of_any_system_but_not_chain_on_one(
    config: FhirConfig,
) -> None:
    check_condition(_request(config, "Patient?identifier=urn:rh:mrn|RH-1"), NATIONAL)
    check_condition(
        _request(config, f"Observation?subject:Patient.identifier={CPR}|0101801234"), NATIONAL
    )
    with pytest.raises(FhirError) as bare:
        check_condition(_request(config, "Patient?identifier=RH-1"), NATIONAL)
    with pytest.raises(FhirError) as chained:
        check_condition(
            _request(config, "Observation?subject:Patient.identifier=urn:rh:mrn|RH-1"), NATIONAL
        )

    assert "only as" in bare.value.issues[0].diagnostics
    assert "may not chain a condition to 'identifier'" in chained.value.issues[0].diagnostics


def test_a_match_counts_by_the_national_id_or_the_sources_own_identifiers(
    config: FhirConfig,
) -> None:
    karen = _karen(
        attributed({"system": CPR, "value": "0101801234"}, [NORTH, SOUTH]),
        attributed({"system": "urn:rh:mrn", "value": "RH-1"}, [NORTH]),
    )
    by_mrn = _request(config, "Patient?identifier=urn:rh:mrn|RH-1")
    by_cpr = _request(config, f"Patient?identifier={CPR}|0101801234")

    assert credited(karen, by_mrn, NORTH, NATIONAL)
    assert not credited(karen, by_mrn, SOUTH, NATIONAL)
    assert credited(karen, by_cpr, SOUTH, NATIONAL)
    assert credited(karen, by_cpr, "Organization/never-pushed", NATIONAL)
