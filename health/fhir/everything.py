"""Patient/$everything: a patient's whole record as a searchset Bundle.

https://hl7.org/fhir/R4/patient-operation-everything.html. The record is the patient's
compartment, decided at write time (every resource whose `patient_id` is the
patient's, the Patient itself included), plus the resources outside every compartment
that it refers to, one step away: the spec's "any resource referenced from those".
Those are found through the reference index, so a reference counts when a search
parameter covers it (Encounter.serviceProvider, Observation.performer, Claim.provider,
...); the few reference elements no R4 search parameter covers (Provenance.agent
.onBehalfOf, CareTeam.managingOrganization) are not followed. Resources of other
patients' compartments are never added, whatever the record refers to.

Pages follow the order (resource type, id) with a cursor on the last key sent: while
the record changes between pages, nothing already sent comes again and nothing that
existed when the listing started is skipped (a resource deleted meanwhile is left out).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from health.access.source_search import ATTRIBUTED_REFERENCES, shown_references
from health.db.versions import StoredVersion
from health.fhir.content import stored
from health.fhir.errors import FhirError, Issue, invalid, not_supported
from health.fhir.interactions import Interactions
from health.fhir.listing import page_size
from health.fhir.validation import ID_PATTERN, check_known_type
from health.fhir.versions import parse_instant

EVERYTHING_PARAMETERS = frozenset({"_since", "_type", "_count", "_cursor", "_format", "_pretty"})
# Kept in the paging links: the criteria and how the client asked for the format.
_KEPT = ("_since", "_type", "_count", "_format", "_pretty")


def everything_bundle(
    interactions: Interactions, *, base: str, patient_id: str, params: dict[str, str]
) -> dict[str, Any]:
    """One page of a patient's record; 404 for an unknown patient, 410 for a deleted one."""
    settings = interactions.config.settings
    unknown = sorted(set(params) - EVERYTHING_PARAMETERS)
    if unknown:
        if set(unknown) & {"start", "end"}:
            raise not_supported(
                "start and end (care dates) are not supported on $everything; "
                "use _since for what changed",
                unknown[0],
            )
        raise invalid(f"Unknown $everything parameter(s): {', '.join(unknown)}", unknown[0])
    since: datetime | None = None
    if params.get("_since"):
        since = parse_instant(params["_since"], "_since")
    types = _types(interactions, params.get("_type"))
    count = page_size(
        params.get("_count"), default=settings.default_page_size, maximum=settings.max_page_size
    )
    after = _cursor(interactions, params.get("_cursor"))
    patient = interactions.read("Patient", patient_id)
    page = interactions.repository.everything(
        patient_id,
        types=types,
        since=since,
        after=after,
        limit=count,
        own_references=_attributed_references(interactions, patient),
    )
    path = f"{base}/Patient/{patient_id}/$everything"
    links = [{"relation": "self", "url": _url(path, params)}]
    if page.more and page.entries:
        last, _ = page.entries[-1]
        kept = {k: params[k] for k in _KEPT if k in params}
        cursor = f"{last.resource_type}/{last.id}"
        links.append({"relation": "next", "url": _url(path, {**kept, "_cursor": cursor})})
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "link": links,
        "entry": [
            {
                "fullUrl": f"{base}/{version.resource_type}/{version.id}",
                "resource": stored(version.body),
                # Outside the compartment: there because the record refers to it.
                "search": {"mode": "match" if in_compartment else "include"},
            }
            for version, in_compartment in page.entries
        ],
    }


def own_record_unavailable() -> FhirError:
    """`GET Patient/$everything` without an id means "my record": it needs to know whose.

    https://hl7.org/fhir/R4/patient-operation-everything.html: "If there is no
    nominated patient (GET /Patient/$everything) then the server SHALL either return an
    error or ... the patient that is the subject of the authorization context".
    """
    return FhirError(
        [
            Issue(
                "forbidden",
                "Patient/$everything without a patient id returns the caller's own "
                "record, which needs a token with a patient context (a citizen's app "
                "launched with launch/patient). Name the patient: GET Patient/{id}/$everything",
            )
        ],
        status=403,
    )


def _types(interactions: Interactions, value: str | None) -> list[str] | None:
    if value is None or not value.strip():
        return None
    types = [t.strip() for t in value.split(",") if t.strip()]
    for resource_type in types:
        check_known_type(resource_type, interactions.config.types, "_type")
    return types


def _cursor(interactions: Interactions, value: str | None) -> tuple[str, str] | None:
    if value is None:
        return None
    resource_type, _, resource_id = value.partition("/")
    if resource_type not in interactions.config.types or not ID_PATTERN.fullmatch(resource_id):
        raise invalid(f"_cursor={value!r} is not a cursor this server issued", "_cursor")
    return resource_type, resource_id


def _url(path: str, params: dict[str, str]) -> str:
    query = urlencode(list(params.items()))
    return f"{path}?{query}" if query else path


def _attributed_references(
    interactions: Interactions, patient: StoredVersion
) -> list[tuple[str, str]]:
    """The local (type, id) the Patient, as the caller was handed it, names under the
    parameters of its attributed references (general-practitioner, organization,
    link). Only a source's $everything needs them (Repository.everything): for anyone
    else they are not worked out."""
    if interactions.repository.source is None:
        return []
    return [
        (target_type, target_id)
        for param, target_type, target_id in shown_references(
            interactions.config.extractor, patient
        )
        if param in ATTRIBUTED_REFERENCES
    ]
