"""The push path: what a backend client writes, matched, run, and recorded with provenance."""

from __future__ import annotations

from typing import Any

from health.access.actor import Actor, ActorKind
from health.db.versions import Write
from health.fhir.bundle_request import BundleRequest, Entry
from health.fhir.errors import FhirError, Issue
from health.fhir.interactions import Interactions, Result
from health.fhir.references import ReferenceResolver
from health.fhir.transaction import process_bundle, write_entry
from health.fhir.validation import check
from health.ingest.provenance import provenance_for_push
from health.ingest.push import DIRECTORY_TYPES, MATCHED_TYPES, Source, prepare_push


def source_of(actor: Actor, fhir_base_url: str) -> Source | None:
    """The source a caller pushes as: a backend client's Organization; None for others."""
    if actor.kind is not ActorKind.client or actor.organization_id is None:
        return None
    return Source(
        organization_id=actor.organization_id,
        uri=f"{fhir_base_url}/Organization/{actor.organization_id}",
    )


def push_bundle(
    interactions: Interactions, bundle: BundleRequest, *, base: str, prefer: str | None
) -> dict[str, Any]:
    """Run a batch or transaction; from a hospital or GP, through person matching,
    source ids and directory deduplication, with a Provenance for what it wrote."""
    settings = interactions.config.settings
    source = source_of(interactions.repository.actor, settings.fhir_base_url)
    if source is None:
        return process_bundle(interactions, bundle, base=base, prefer=prefer)
    prepare_push(bundle, source, settings.national_id_systems)
    mark = len(interactions.written)
    with interactions.conditions_of_the_server(MATCHED_TYPES):
        response = process_bundle(interactions, bundle, base=base, prefer=prefer)
    confirmed = [
        entry["response"]["location"]
        for entry in response["entry"]
        if entry.get("response", {}).get("location")
    ]
    _record(interactions, source, interactions.written[mark:], confirmed)
    return response


def push_one(interactions: Interactions, entry: Entry, *, base: str) -> Result | None:
    """A create or update of one resource (POST Type, PUT Type/id, PUT Type?criteria)
    by a hospital or GP: the push rules as for a Bundle of that one entry. None when
    the caller is no source: the caller then writes it as plain FHIR."""
    settings = interactions.config.settings
    source = source_of(interactions.repository.actor, settings.fhir_base_url)
    if source is None:
        return None
    try:
        request = BundleRequest("transaction", [entry])
        prepare_push(request, source, settings.national_id_systems)
        if entry.resource is not None:
            resolver = ReferenceResolver(interactions, {}, base, request.literal_of)
            resolver.rewrite(entry.resource, entry.where)
        mark = len(interactions.written)
        with interactions.conditions_of_the_server(MATCHED_TYPES):
            result = write_entry(interactions, entry)
            interactions.flush()
    except FhirError as error:
        raise _single(error, entry) from None
    _record(interactions, source, interactions.written[mark:], [result.location or ""])
    return result


def our_id(interactions: Interactions, resource_type: str, resource_id: str) -> str:
    """The id here of what a source calls `resource_type/resource_id`.

    For PATCH and DELETE by a hospital or GP: what it pushed is stored under the id
    derived from its own id (health.ingest.push), which it may use; or it may use our
    id, as our responses' Location gave it. Other callers use our ids as they are.
    """
    settings = interactions.config.settings
    source = source_of(interactions.repository.actor, settings.fhir_base_url)
    if source is None or resource_type == "Patient" or resource_type in DIRECTORY_TYPES:
        return resource_id
    derived = source.derived_id(resource_type, resource_id)
    known = interactions.exists(resource_type, derived)
    return derived if known else resource_id


def _record(
    interactions: Interactions, source: Source, written: list[Write], confirmed: list[str]
) -> None:
    """Store the push's Provenance (health.ingest.provenance)."""
    references = [reference for reference in confirmed if reference]
    for provenance in provenance_for_push(written, source, confirmed=references):
        checked = check(provenance, "Provenance", interactions.config.types)
        interactions.create_record_of_request(checked)
    interactions.flush()


def _single(error: FhirError, entry: Entry) -> FhirError:
    """An error located in the one-entry Bundle, located in the resource instead."""
    prefix = f"{entry.where}.resource"

    def moved(expression: str) -> str:
        for old in (prefix, entry.where):
            if expression.startswith(old):
                return entry.resource_type + expression[len(old) :]
        return expression

    issues = [
        Issue(i.code, i.diagnostics, tuple(moved(e) for e in i.expression), i.severity)
        for i in error.issues
    ]
    return FhirError(issues, status=error.status, headers=error.headers)
