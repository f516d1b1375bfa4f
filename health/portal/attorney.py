"""Powers of attorney a citizen grants in the portal: the form, and the RelatedPerson.

https://hl7.org/fhir/R4/relatedperson.html. A grant is a RelatedPerson in the granting
citizen's record naming the attorney by national ID, with the role POWATT and an end
date; health/access/proxy.py gives its holder the right to act for the citizen while it
is active and within its period. Revoking writes it again with `active: false`. Pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from health.access.proxy import ATTORNEY_CODES, CUSTODY_CODES, ROLE_CODE_SYSTEM
from health.portal.datatypes import JsonDict, display_name

# A power of attorney granted in the portal ends within this many years.
MAX_YEARS = 5
# A Danish CPR number: ten digits (DDMMYY-SSSS, written without the dash here).
_CPR = re.compile(r"\d{10}")


@dataclass(frozen=True)
class Grant:
    """What the form asked for, checked; or the problems with it (message ids)."""

    national_id: str
    name: str
    end: date | None
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class Attorney:
    """A RelatedPerson of the citizen's record that gives someone a right to act."""

    related_person_id: str
    name: str
    national_id: str
    basis: str  # "attorney" or "custody"
    start: str
    end: str
    active: bool
    # A power of attorney (the citizen's to withdraw), not custody.
    revocable: bool


def check_grant(national_id: str, name: str, end: str, today: date) -> Grant:
    """The form's fields checked; `problems` names each field that is wrong."""
    national_id = national_id.replace("-", "").replace(" ", "")
    name = " ".join(name.split())
    problems = []
    if not _CPR.fullmatch(national_id):
        problems.append("national_id")
    if not name or len(name) > 200:
        problems.append("name")
    try:
        end_date: date | None = date.fromisoformat(end)
    except ValueError:
        end_date = None
    latest = today + timedelta(days=365 * MAX_YEARS + MAX_YEARS // 4 + 1)
    if end_date is None or end_date <= today or end_date > latest:
        problems.append("end")
    return Grant(national_id, name, end_date, tuple(problems))


def related_person(grant: Grant, patient_id: str, national_id_system: str, today: date) -> JsonDict:
    """The RelatedPerson that grants the power of attorney."""
    assert grant.end is not None and not grant.problems
    given, _, family = grant.name.rpartition(" ")
    human: dict[str, Any] = {"text": grant.name, "family": family}
    if given:
        human["given"] = given.split()
    return {
        "resourceType": "RelatedPerson",
        "active": True,
        "identifier": [{"system": national_id_system, "value": grant.national_id}],
        "patient": {"reference": f"Patient/{patient_id}"},
        "relationship": [{"coding": [{"system": ROLE_CODE_SYSTEM, "code": "POWATT"}]}],
        "name": [human],
        "period": {"start": today.isoformat(), "end": grant.end.isoformat()},
    }


def revoked(related: JsonDict) -> JsonDict:
    """The RelatedPerson again, no longer in force."""
    return {**related, "active": False}


def attorneys(related_persons: list[JsonDict], national_id_systems: list[str]) -> list[Attorney]:
    """The record's proxies (attorneys and custodians), newest grants first."""
    found = []
    for related in related_persons:
        codes = {
            coding.get("code")
            for concept in related.get("relationship") or []
            for coding in (concept or {}).get("coding") or []
            if isinstance(coding, dict) and coding.get("system") in (None, ROLE_CODE_SYSTEM)
        }
        if not codes & (ATTORNEY_CODES | CUSTODY_CODES):
            continue
        national_id = next(
            (
                str(identifier.get("value"))
                for identifier in related.get("identifier") or []
                if isinstance(identifier, dict) and identifier.get("system") in national_id_systems
            ),
            "",
        )
        period = related.get("period") or {}
        found.append(
            Attorney(
                related_person_id=str(related.get("id")),
                name=display_name(related),
                national_id=national_id,
                basis="attorney" if codes & ATTORNEY_CODES else "custody",
                start=str(period.get("start") or ""),
                end=str(period.get("end") or ""),
                active=related.get("active") is not False,
                # A citizen may always withdraw a power of attorney; custody is the law's.
                revocable=bool(codes & ATTORNEY_CODES),
            )
        )
    return sorted(found, key=lambda a: (not a.active, a.name.lower(), a.related_person_id))
