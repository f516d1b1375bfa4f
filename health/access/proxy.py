"""Proxies: who may act for a citizen, decided from the citizen's RelatedPerson entries.

A proxy sees and manages the citizen's record as the citizen would, and the access log
names both (health/audit/). Two bases:

- custody: a RelatedPerson of the child with the role GUARD (legal guardian; Danish
  forældremyndighed), recorded by a source system (not by a citizen), while the child
  is younger than the configured age (Denmark 15, the Netherlands 12);
- power of attorney: a RelatedPerson with the role POWATT or HPOWATT, either recorded
  by a source system (a registered power of attorney) or granted by the citizen
  themself through the portal, then always with an end date.

The RelatedPerson names the proxy by national ID (an identifier in one of the national
ID systems) and must be active, within its period.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from health.access.policy import is_organisation_record
from health.fhir.search.dates import date_range

ROLE_CODE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
CUSTODY_CODES = frozenset({"GUARD"})
ATTORNEY_CODES = frozenset({"POWATT", "HPOWATT"})


class ProxyBasis(StrEnum):
    custody = "custody"
    attorney = "attorney"


@dataclass(frozen=True)
class ProxyRight:
    """That the person with a national ID may act for the citizen `patient_id`."""

    patient_id: str
    basis: ProxyBasis
    related_person_id: str
    until: datetime | None


def proxy_right(
    related_person: dict[str, Any],
    *,
    related_person_id: str,
    patient_id: str,
    recorded_by: str | None,
    principal_birth_date: str | None,
    proxy_national_id: str,
    national_id_systems: list[str],
    child_age: int,
    now: datetime,
) -> ProxyRight | None:
    """The right a RelatedPerson gives the person `proxy_national_id`, if any."""
    if related_person.get("active") is False:
        return None
    if not any(
        identifier.get("system") in national_id_systems
        and identifier.get("value") == proxy_national_id
        for identifier in related_person.get("identifier") or []
        if isinstance(identifier, dict)
    ):
        return None
    start, end = _period(related_person.get("period") or {})
    if (start is not None and start > now) or (end is not None and end <= now):
        return None
    codes = {
        coding.get("code")
        for concept in related_person.get("relationship") or []
        if isinstance(concept, dict)
        for coding in concept.get("coding") or []
        if isinstance(coding, dict) and coding.get("system") in (None, ROLE_CODE_SYSTEM)
    }
    from_source = is_organisation_record(recorded_by)
    if (
        codes & CUSTODY_CODES
        and from_source
        and _younger_than(principal_birth_date, child_age, now)
    ):
        return ProxyRight(patient_id, ProxyBasis.custody, related_person_id, end)
    granted_by_citizen = recorded_by == f"Patient/{patient_id}" and end is not None
    if codes & ATTORNEY_CODES and (from_source or granted_by_citizen):
        return ProxyRight(patient_id, ProxyBasis.attorney, related_person_id, end)
    return None


def _period(period: dict[str, Any]) -> tuple[datetime | None, datetime | None]:
    start = date_range(period["start"]) if isinstance(period.get("start"), str) else None
    end = date_range(period["end"]) if isinstance(period.get("end"), str) else None
    return (start[0] if start else None, end[1] if end else None)


def _younger_than(birth_date: str | None, years: int, now: datetime) -> bool:
    if not birth_date:
        return False
    try:
        born = date.fromisoformat(birth_date[:10])
    except ValueError:
        return False
    today = now.date()
    age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    return age < years
