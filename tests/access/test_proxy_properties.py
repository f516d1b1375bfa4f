"""Property: who may act for whom, over random RelatedPerson entries, as stored and
looked up (health.auth.identity.proxy_rights), agrees with the rules restated here."""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from health.auth.identity import proxy_rights

EXAMPLES = int(os.environ.get("HEALTH_PROPERTY_EXAMPLES", "300"))
CPR = "urn:oid:1.2.208.176.1.2"
ROLES = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
NOW = datetime.now(UTC)
_worlds = itertools.count()


@dataclass(frozen=True)
class Relation:
    principal_age: int
    code: str
    # "source" (a hospital's system) or "principal" (the citizen themself).
    recorder: str
    active: bool
    # Days from now: None for no bound.
    start: int | None
    end: int | None


relations = st.builds(
    Relation,
    principal_age=st.sampled_from([3, 14, 15, 16, 40, 88]),
    code=st.sampled_from(["GUARD", "POWATT", "HPOWATT", "FTH", "DAU"]),
    recorder=st.sampled_from(["source", "principal"]),
    active=st.booleans(),
    start=st.sampled_from([None, -400, -1, 30]),
    end=st.sampled_from([None, -30, 1, 400]),
)


def expected(relation: Relation) -> str | None:
    """The basis the rules give (docs/ACCESS.md, "Proxies"), or None."""
    if not relation.active:
        return None
    if relation.start is not None and relation.start > 0:
        return None
    if relation.end is not None and relation.end <= 0:
        return None
    from_source = relation.recorder == "source"
    if relation.code == "GUARD" and from_source and relation.principal_age < 15:
        return "custody"
    if relation.code in ("POWATT", "HPOWATT") and (from_source or relation.end is not None):
        return "attorney"
    return None


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(world_relations=st.lists(relations, min_size=1, max_size=3))
def test_proxy_rights_follow_the_rules(
    world: Any, database: Any, world_relations: list[Relation]
) -> None:
    n = next(_worlds)
    proxy_id = f"9{n:09d}"
    wanted = {}
    for number, relation in enumerate(world_relations):
        principal = f"r{n}-{number}"
        born = _birth_date(relation.principal_age)
        world.write({"resourceType": "Patient", "id": principal, "birthDate": born})
        period = {}
        if relation.start is not None:
            period["start"] = (NOW + timedelta(days=relation.start)).date().isoformat()
        if relation.end is not None:
            period["end"] = (NOW + timedelta(days=relation.end)).date().isoformat()
        related: dict[str, Any] = {
            "resourceType": "RelatedPerson",
            "id": f"{principal}-proxy",
            "active": relation.active,
            "identifier": [{"system": CPR, "value": proxy_id}],
            "patient": {"reference": f"Patient/{principal}"},
            "relationship": [{"coding": [{"system": ROLES, "code": relation.code}]}],
        }
        if period:
            related["period"] = period
        recorder = "Organization/north" if relation.recorder == "source" else f"Patient/{principal}"
        world.write_as(related, recorder)
        basis = expected(relation)
        if basis is not None:
            wanted[principal] = basis

    with database.session(write=False) as session:
        rights = proxy_rights(session, proxy_id, [CPR], child_age=15, now=NOW)

    assert {r.patient_id: r.basis.value for r in rights} == wanted


def _birth_date(age: int) -> str:
    today = NOW.date()
    # A birthday a few days ahead: the principal is `age`, turning `age + 1` soon.
    born = date(today.year - age - 1, today.month, min(today.day, 28)) + timedelta(days=5)
    return born.isoformat()
