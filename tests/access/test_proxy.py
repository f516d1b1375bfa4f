"""Who may act for a citizen: custody of a child under the age limit, power of attorney."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from health.access.proxy import ProxyBasis, proxy_right
from health.auth.identity import proxy_rights

CPR = "urn:oid:1.2.208.176.1.2"
NOW = datetime(2026, 11, 29, tzinfo=UTC)
ROLES = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"


def _related(code: str, national_id: str = "1111111118", **more: Any) -> dict[str, Any]:
    return {
        "resourceType": "RelatedPerson",
        "identifier": [{"system": CPR, "value": national_id}],
        "patient": {"reference": "Patient/child"},
        "relationship": [{"coding": [{"system": ROLES, "code": code}]}],
        **more,
    }


def _right(related: dict[str, Any], *, born: str = "2016-05-09", by: str | None = None) -> Any:
    return proxy_right(
        related,
        related_person_id="rp",
        patient_id="child",
        recorded_by=by,
        principal_birth_date=born,
        proxy_national_id="1111111118",
        national_id_systems=[CPR],
        child_age=15,
        now=NOW,
    )


def test_a_guardian_acts_for_a_child_under_the_age_limit() -> None:
    right = _right(_related("GUARD"), by="Organization/gp")
    assert right is not None and right.basis is ProxyBasis.custody


def test_custody_ends_on_the_childs_birthday_at_the_age_limit() -> None:
    assert _right(_related("GUARD"), born="2011-11-29", by="Organization/gp") is None
    assert _right(_related("GUARD"), born="2011-11-30", by="Organization/gp") is not None


def test_a_citizen_cannot_make_themself_a_guardian() -> None:
    assert _right(_related("GUARD"), by="Patient/child") is None


def test_kinship_alone_gives_no_right() -> None:
    assert _right(_related("FTH"), by="Organization/gp") is None


def test_a_power_of_attorney_granted_by_the_citizen_needs_an_end() -> None:
    open_ended = _related("POWATT")
    limited = _related("POWATT", period={"end": "2027-06-01"})

    assert _right(open_ended, by="Patient/child", born="1938-11-30") is None
    right = _right(limited, by="Patient/child", born="1938-11-30")
    assert right is not None and right.basis is ProxyBasis.attorney


def test_an_expired_or_revoked_power_of_attorney_gives_nothing() -> None:
    expired = _related("POWATT", period={"end": "2026-01-01"})
    revoked = _related("POWATT", active=False, period={"end": "2027-06-01"})

    assert _right(expired, by="Patient/child", born="1938-11-30") is None
    assert _right(revoked, by="Patient/child", born="1938-11-30") is None


def test_someone_elses_national_id_gives_nothing() -> None:
    assert _right(_related("GUARD", national_id="2222222226"), by="Organization/gp") is None


def test_the_demo_parent_and_attorney_hold_their_rights(world: Any, database: Any) -> None:
    world.write({"resourceType": "Patient", "id": "child", "birthDate": "2016-05-09"})
    world.write({**_related("GUARD"), "id": "parent-of-child"}, by="north")
    world.write({"resourceType": "Patient", "id": "elder", "birthDate": "1938-11-30"})
    world.write_as(
        {
            **_related("POWATT"),
            "id": "attorney",
            "patient": {"reference": "Patient/elder"},
            "period": {"end": "2027-06-01"},
        },
        "Patient/elder",
    )

    with database.session(write=False) as session:
        rights = proxy_rights(session, "1111111118", [CPR], child_age=15, now=NOW)

    assert {(r.patient_id, r.basis) for r in rights} == {
        ("child", ProxyBasis.custody),
        ("elder", ProxyBasis.attorney),
    }
