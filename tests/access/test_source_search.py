"""A source's searches and conditions on the citizen's Patient (health/access/source_search.py).

Over HTTP with two sources: tests/ingest/test_pipeline.py. Here the rules one by one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from health.access.attribution import attributed
from health.access.source_search import check_condition, check_search, credited
from health.db.versions import StoredVersion
from health.fhir.config import FhirConfig
from health.fhir.errors import FhirError
from health.fhir.search.params import SearchLimits, SearchRequest, parse_search
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
        "Observation?code=http://loinc.org|718-7",
    ],
)
def test_searches_a_source_may_make(config: FhirConfig, query: str) -> None:
    check_search(_request(config, query), NATIONAL)


@pytest.mark.parametrize(
    "query",
    [
        "Patient?identifier=urn:rh:mrn|RH-1",
        f"Patient?identifier={CPR}|0101801234,urn:rh:mrn|RH-1",
        f"Patient?identifier:not={CPR}|0101801234",
        "Patient?link=Patient/other",
        "Patient?general-practitioner=Organization/south",
    ],
)
def test_searches_a_source_may_not_make(config: FhirConfig, query: str) -> None:
    with pytest.raises(FhirError) as refused:
        check_search(_request(config, query), NATIONAL)

    assert refused.value.status == 403


def test_a_condition_may_name_an_identifier_of_any_system_but_not_chain_on_one(
    config: FhirConfig,
) -> None:
    check_condition(_request(config, "Patient?identifier=urn:rh:mrn|RH-1"), NATIONAL)
    with pytest.raises(FhirError):
        check_condition(_request(config, "Patient?identifier=RH-1"), NATIONAL)
    with pytest.raises(FhirError):
        check_condition(
            _request(config, "Observation?subject:Patient.identifier=urn:rh:mrn|RH-1"), NATIONAL
        )


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
