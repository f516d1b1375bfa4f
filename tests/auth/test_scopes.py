"""SMART scopes: v1 and v2 syntax, what they permit, and what a client may be granted."""

from __future__ import annotations

import pytest

from health.auth.scopes import Context, Permission, ScopeError, Scopes, parse_clinical


@pytest.mark.parametrize(
    ("scope", "letters"),
    [
        ("patient/Observation.read", "rs"),
        ("patient/*.write", "cud"),
        ("user/Patient.*", "cruds"),
        ("user/Observation.rs", "rs"),
        ("system/*.cruds", "cruds"),
        ("system/Patient.c", "c"),
    ],
)
def test_v1_and_v2_permissions(scope: str, letters: str) -> None:
    parsed = parse_clinical(scope)
    assert parsed is not None
    assert parsed.permissions == frozenset(Permission(letter) for letter in letters)


@pytest.mark.parametrize(
    "scope",
    [
        "patient/Observation.sr",  # v2 letters must come in the order c r u d s
        "patient/Observation.",
        "doctor/Observation.read",
        "patient/observation.read",
        "patient/Observation.rs?category=laboratory",  # granular scopes: not supported
        "Observation.read",
    ],
)
def test_malformed_or_unsupported_scopes_are_refused(scope: str) -> None:
    with pytest.raises(ScopeError):
        parse_clinical(scope)


def test_non_clinical_scopes_are_kept_but_permit_nothing() -> None:
    scopes = Scopes.parse("openid fhirUser launch/patient offline_access")
    assert scopes.clinical == ()
    assert "offline_access" in scopes
    assert not scopes.allows(Permission.read, "Patient")


def test_a_scope_permits_only_its_type_and_letters() -> None:
    scopes = Scopes.parse("user/Observation.rs user/Patient.r")
    assert scopes.allows(Permission.search, "Observation")
    assert scopes.allows(Permission.read, "Patient")
    assert not scopes.allows(Permission.search, "Patient")
    assert not scopes.allows(Permission.create, "Observation")
    assert not scopes.allows(Permission.read, "Condition")
    assert scopes.contexts == {Context.user}
    assert scopes.readable_types() == {"Observation", "Patient"}


def test_a_wildcard_read_makes_every_type_readable() -> None:
    assert Scopes.parse("patient/*.read").readable_types() is None
    assert Scopes.parse("system/*.c").readable_types() == frozenset()


def test_a_request_is_trimmed_to_what_the_client_may_be_granted() -> None:
    allowed = Scopes.parse("patient/*.read user/Observation.rs")
    requested = Scopes.parse(
        "openid patient/Observation.rs patient/Observation.write user/Observation.read "
        "user/Patient.read system/*.read"
    )
    assert requested.within(allowed).granted == (
        "openid",
        "patient/Observation.rs",
        "user/Observation.read",
    )
