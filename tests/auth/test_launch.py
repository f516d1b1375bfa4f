"""The standalone launch's decisions, without HTTP: which scopes a person may grant."""

from __future__ import annotations

from datetime import timedelta

import pytest

from health.access.actor import ActorKind
from health.auth.launch import (
    Launch,
    LaunchRefused,
    Person,
    describe,
    grant_lifetime,
    granted_scopes,
)
from health.auth.scopes import Scopes

CLINICIAN = Person(ActorKind.clinician, fhir_user="Practitioner/p1", patient_id=None)
CITIZEN = Person(ActorKind.citizen, fhir_user="Patient/a", patient_id="a")
NO_RECORD = Person(ActorKind.citizen, fhir_user=None, patient_id=None)


def _granted(scope: str, person: Person) -> str:
    return str(granted_scopes(Scopes.parse(scope), person))


def test_a_citizen_gets_patient_scopes() -> None:
    scope = "launch/patient openid fhirUser patient/*.rs offline_access"
    assert _granted(scope, CITIZEN) == scope


def test_a_citizen_asking_for_user_scopes_is_refused() -> None:
    with pytest.raises(LaunchRefused, match="clinicians"):
        _granted("patient/*.rs user/Observation.rs", CITIZEN)


def test_a_citizen_without_a_record_is_refused() -> None:
    with pytest.raises(LaunchRefused, match="no health record"):
        _granted("launch/patient patient/*.rs", NO_RECORD)


def test_a_clinician_gets_user_scopes_and_loses_patient_ones() -> None:
    granted = _granted("launch/patient patient/*.rs user/*.rs openid fhirUser", CLINICIAN)
    assert granted == "user/*.rs openid fhirUser"


def test_a_clinician_app_with_only_patient_scopes_is_refused() -> None:
    with pytest.raises(LaunchRefused, match="patient picker"):
        _granted("launch/patient patient/*.rs", CLINICIAN)


def test_ehr_launch_scopes_are_dropped() -> None:
    assert _granted("launch launch/encounter patient/*.rs", CITIZEN) == "patient/*.rs"
    assert _granted("launch user/*.rs", CLINICIAN) == "user/*.rs"


def test_refusals_are_fit_for_an_oauth_error_description() -> None:
    for scope, person in (("user/*.rs", CITIZEN), ("patient/*.rs", NO_RECORD)):
        with pytest.raises(LaunchRefused) as refused:
            _granted(scope, person)
        assert all(" " <= c <= "~" and c not in '"\\' for c in str(refused.value))


def test_the_approval_page_says_what_each_scope_gives() -> None:
    lines = describe(
        Scopes.parse("patient/Observation.rs patient/*.read openid fhirUser offline_access"),
        CITIZEN,
        offline_days=30,
        online_hours=8,
    )
    assert lines == [
        "Read and search Observation resources in your record",
        "Read and search all data in your record",
        "Know who you are (Patient/a)",
        "Keep this access after you close the app, for up to 30 days or until you withdraw it",
    ]
    (line,) = describe(Scopes.parse("user/*.cruds"), CLINICIAN, offline_days=30, online_hours=8)
    assert line == "Create, read, change, delete and search all data in the records you may see"


def test_a_grant_lasts_as_long_as_its_refresh_scope_allows() -> None:
    lifetimes = {"single_token": timedelta(minutes=6), "online": timedelta(hours=8)}
    offline = timedelta(days=30)
    assert (
        grant_lifetime(Scopes.parse("patient/*.rs offline_access"), **lifetimes, offline=offline)
        == offline
    )
    assert grant_lifetime(Scopes.parse("online_access"), **lifetimes, offline=offline) == timedelta(
        hours=8
    )
    assert grant_lifetime(Scopes.parse("patient/*.rs"), **lifetimes, offline=offline) == timedelta(
        minutes=6
    )


def test_a_launch_survives_its_json_round_trip() -> None:
    launch = Launch("2512894417", ActorKind.citizen, "Patient/a", "a", "patient/*.rs")
    assert Launch.from_json(launch.as_json()) == launch
