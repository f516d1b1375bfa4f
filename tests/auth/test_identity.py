"""Who a person logged in at the eID is: a clinician by a Practitioner's identifier, else a
citizen by a Patient's, under any national ID system."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from health.access.actor import ActorKind
from health.auth.identity import identify
from health.auth.launch import LaunchRefused, Person
from health.db.engine import Database
from health.settings import Settings

CPR = "urn:oid:1.2.208.176.1.2"
BSN = "http://fhir.nl/fhir/NamingSystem/bsn"
FHIR_JSON = {"Accept": "application/fhir+json", "Content-Type": "application/fhir+json"}


def _create(client: TestClient, resource_type: str, system: str, value: str, **extra: Any) -> str:
    resource = {
        "resourceType": resource_type,
        "identifier": [{"system": system, "value": value}],
        **extra,
    }
    answer = client.post(f"/fhir/{resource_type}", json=resource, headers=FHIR_JSON)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def _identify(database: Database, settings: Settings, national_id: str) -> Person:
    with database.session(write=False) as session:
        return identify(session, national_id, settings.national_id_systems)


def test_a_practitioner_is_a_clinician(
    client: TestClient, database: Database, settings: Settings
) -> None:
    practitioner = _create(client, "Practitioner", CPR, "0203704321")
    # Clinicians have records too; the Practitioner decides.
    _create(client, "Patient", CPR, "0203704321")
    assert _identify(database, settings, "0203704321") == Person(
        ActorKind.clinician, f"Practitioner/{practitioner}", None
    )


def test_a_citizen_is_found_under_any_national_id_system(
    client: TestClient, database: Database, settings: Settings
) -> None:
    patient = _create(client, "Patient", BSN, "123456782")
    assert _identify(database, settings, "123456782") == Person(
        ActorKind.citizen, f"Patient/{patient}", patient
    )


def test_an_identifier_of_another_system_does_not_count(
    client: TestClient, database: Database, settings: Settings
) -> None:
    _create(client, "Practitioner", "urn:example:staff-number", "0203704321")
    _create(client, "Patient", "urn:example:mrn", "0203704321")
    assert _identify(database, settings, "0203704321") == Person(ActorKind.citizen, None, None)


def test_an_inactive_practitioner_is_not_a_clinician(
    client: TestClient, database: Database, settings: Settings
) -> None:
    _create(client, "Practitioner", CPR, "0203704321", active=False)
    assert _identify(database, settings, "0203704321").kind is ActorKind.citizen


def test_two_records_with_one_national_id_are_refused_not_guessed(
    client: TestClient, database: Database, settings: Settings
) -> None:
    _create(client, "Patient", CPR, "2512894417")
    _create(client, "Patient", CPR, "2512894417")
    with pytest.raises(LaunchRefused, match="More than one Patient"):
        _identify(database, settings, "2512894417")
