"""What a hospital's or GP's client may search on the citizen's one Patient.

A source is shown only the parts of the Patient it reported itself
(health/access/attribution.py): another hospital's record number, the GP, the
managing organisation and links say where else the citizen is treated. The search
index holds every source's values, so a search on them would still answer the
question the reading hides: `Patient?identifier=<the psychiatric ward's system>|<its
number>` matching tells the asking hospital that its patient is known there. So a
source's searches and conditions on those parameters are held to what it may see:

- A search may use them as `identifier=<national ID system>|<number>`: the national
  ID is register data every source pushes (health/ingest/push.py). It may also name
  an identifier of another system exactly (`system|value`), as its own record number:
  that searches only the identifiers the asking source reported itself (the index
  holds them per source, health/fhir/search/extract.py), so another hospital's
  number finds nothing, as an unknown one does. Anything else on them is refused
  (403), naming the parameter.
- A condition (If-None-Exist, a conditional update or delete, a conditional
  reference) may name identifiers the same ways on the Patient itself; a Patient it
  matches counts only if the identifier is a national ID or was reported by the
  asking source (`credited`, which reads the Patient's own identifiers: a condition
  chained into Patients is held to the national ID).

A search's chains into Patient (`subject:Patient.identifier=...`) are held to the same
rules; `_sort` by those parameters, `_has` through the Patient's attributed references
and `_revinclude` along them are refused. `_include` from the Patient follows the
Patient as the source is shown it (`shown_references`), not the index, which holds
every source's references: the GP it named comes, another source's GP does not.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import orjson

from health.access.attribution import reporters
from health.db.versions import StoredVersion
from health.fhir.errors import FhirError, Issue
from health.fhir.search.extract import REPORTED_BY, Extractor
from health.fhir.search.params import Condition, Has, SearchRequest
from health.fhir.search.values import Token

PATIENT = "Patient"
# Patient search parameters over attributed elements (attribution.ATTRIBUTED) and
# meta.source, which a source is shown only when it is its own.
ATTRIBUTED_REFERENCES = frozenset({"general-practitioner", "organization", "link"})
ATTRIBUTED_PARAMS = ATTRIBUTED_REFERENCES | {"identifier"}
_SOURCE = "_source"


def check_search(
    request: SearchRequest, source: str, national_id_systems: list[str]
) -> SearchRequest:
    """`request` as `source` (`Organization/x`) may make it: its conditions on
    identifiers other than national IDs searching only what it reported. 403 unless
    the attributed parameters are used by national ID or by exact identifiers."""
    conditions = tuple(_held(c, request, source, national_id_systems) for c in request.conditions)
    if request.resource_type == PATIENT:
        for key in request.sort:
            if _attributed_param(key.param):
                raise _refused(key.param, "sort by")
    for include in request.includes:
        # Reversed, the Patient's attributed references lead from what other sources
        # reported: Organization?_revinclude=Patient:general-practitioner would add the
        # citizens whose GP any source says it is. (Forward, they are read from the
        # Patient as shown: Repository.included.)
        if (
            include.reverse
            and include.source_type == PATIENT
            and (_attributed_param(include.param) or include.param == "*")
        ):
            raise _refused(include.param, "revinclude by")
    _check_has(request)
    return replace(request, conditions=conditions)


def _held(
    condition: Condition | Has, request: SearchRequest, source: str, national_id_systems: list[str]
) -> Condition | Has:
    """`condition` searching only what `source` reported of the Patients' identifiers."""
    if isinstance(condition, Has):
        return condition  # through Patients only by attributed references: _check_has
    if request.resource_type == PATIENT and _attributed_param(condition.param):
        return _own(condition, source, national_id_systems)
    chained = condition.chain
    if chained is None or PATIENT not in condition.target_types:
        return condition
    if not _attributed_param(chained.param) or _by_national_id(chained, national_id_systems):
        return condition
    if condition.target_types != (PATIENT,):
        # The chain searches the other types' identifiers as well, which are not
        # attributed: it can be held to the source only on Patients alone.
        raise _refused(chained.param, target=f"{condition.param}:{PATIENT}")
    return replace(condition, chain=_own(chained, source, national_id_systems))


def _own(condition: Condition, source: str, national_id_systems: list[str]) -> Condition:
    """A condition on a Patient's attributed parameter as `source` may search it."""
    if _by_national_id(condition, national_id_systems):
        return condition
    if not source or not _exact_identifier(condition):
        raise _refused(condition.param)  # a client of no Organization reported nothing
    if any(v.system in national_id_systems for v in condition.values):
        # One national ID or another source's number: two parameters in one.
        raise _refused(condition.param, mixed=True)
    return replace(
        condition,
        param=f"{condition.param}{REPORTED_BY}",
        values=tuple(
            Token(f"{source}|{v.system}", v.code, system_given=True) for v in condition.values
        ),
    )


def shown_references(extractor: Extractor, patient: StoredVersion) -> list[tuple[str, str, str]]:
    """The local references of a Patient as a source was handed it (`Repository.shown`:
    only the values it reported itself), as (parameter, type, id), read by the index's
    own extractor: what its `_include` and `$everything` follow from the Patient."""
    if patient.body is None:
        return []
    rows = extractor.extract(orjson.loads(patient.body))
    return [
        (param, target_type, target_id)
        for param, target_type, target_id, _url in rows.references
        if target_type and target_id
    ]


def check_condition(request: SearchRequest, national_id_systems: list[str]) -> None:
    """403 unless every attributed parameter of a condition is an exact identifier on
    the Patient itself, which `credited` can check."""
    for condition, top_level in _on_patients(request):
        if _by_national_id(condition, national_id_systems):
            continue
        if not _exact_identifier(condition):
            raise _refused(condition.param)
        if not top_level:  # an own number, but through a chain `credited` cannot read
            raise _refused(condition.param, "chain a condition to")
    _check_has(request)


def _check_has(request: SearchRequest) -> None:
    """`_has:Patient:<param>:...` goes through the Patients' `param` references: for an
    attributed one, through what other sources reported (`Organization?_has:Patient:
    general-practitioner:...` would name a citizen's GP)."""
    for condition in request.conditions:
        if (
            isinstance(condition, Has)
            and condition.source_type == PATIENT
            and _attributed_param(condition.reference_param)
        ):
            raise _refused(condition.reference_param, "search through")


def credited(
    version: StoredVersion, request: SearchRequest, source: str, national_id_systems: list[str]
) -> bool:
    """Whether a Patient a condition matched still matches on what `source` may see:
    each identifier condition by a national ID it carries, or by an identifier
    `source` reported."""
    if version.body is None:
        return False
    held = orjson.loads(version.body).get("identifier") or []
    for condition in request.conditions:
        if not isinstance(condition, Condition) or condition.param != "identifier":
            continue
        if not any(_holds(held, token, source, national_id_systems) for token in condition.values):
            return False
    return True


def _holds(held: list[Any], token: Token, source: str, national_id_systems: list[str]) -> bool:
    for identifier in held:
        if not isinstance(identifier, dict):
            continue
        if identifier.get("system") != token.system or identifier.get("value") != token.code:
            continue
        if token.system in national_id_systems or source in reporters(identifier):
            return True
    return False


def _on_patients(request: SearchRequest) -> Iterator[tuple[Condition, bool]]:
    """The conditions that test a Patient's attributed values, at any level, each with
    whether it is a condition of the request's own Patients (not of a chain or _has)."""
    for condition in request.conditions:
        if isinstance(condition, Has):
            if condition.source_type == PATIENT and _attributed_param(condition.condition.param):
                yield condition.condition, False
            continue
        if request.resource_type == PATIENT and _attributed_param(condition.param):
            yield condition, True
        chained = condition.chain
        if (
            chained is not None
            and PATIENT in condition.target_types
            and _attributed_param(chained.param)
        ):
            yield chained, False


def _attributed_param(param: str) -> bool:
    return param in ATTRIBUTED_PARAMS or param == _SOURCE


def _exact_identifier(condition: Condition) -> bool:
    return (
        condition.param == "identifier"
        and condition.modifier is None
        and condition.chain is None
        and all(
            isinstance(v, Token) and v.system is not None and v.code is not None
            for v in condition.values
        )
    )


def _by_national_id(condition: Condition, national_id_systems: list[str]) -> bool:
    return _exact_identifier(condition) and all(
        v.system in national_id_systems for v in condition.values
    )


def _refused(
    param: str, what: str | None = None, *, target: str | None = None, mixed: bool = False
) -> FhirError:
    """403 naming `param`: used only by national ID or exact identifiers (a condition),
    with `what` ("sort by", ...) not at all, through a chain only as `target`, or
    with national IDs and other identifiers in separate parameters (`mixed`)."""
    if what:
        rule = f"may not {what} '{param}' of the citizen's Patient"
    elif target:
        rule = f"chains to '{param}' of the citizen's Patient only through '{target}'"
    elif mixed:
        rule = (
            "searches by national ID and by another identifier in separate searches, "
            f"not as alternatives of one '{param}'"
        )
    else:
        rule = (
            f"uses '{param}' of the citizen's Patient only as "
            "identifier=<national ID system>|<number> or identifier=<system>|<its own number>"
        )
    return FhirError(
        [
            Issue(
                "forbidden",
                f"A hospital's or GP's client {rule}: it finds citizens by national ID or by "
                "the identifiers it reported itself; other sources' identifiers, GP, "
                "organisation and links are not its to see",
                (param,),
            )
        ],
        status=403,
    )
