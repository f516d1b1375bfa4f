"""The push path: a backend client's Bundle, matched, run, and recorded with provenance."""

from __future__ import annotations

from typing import Any

from health.access.actor import Actor, ActorKind
from health.fhir.bundle_request import BundleRequest
from health.fhir.interactions import Interactions
from health.fhir.transaction import process_bundle
from health.fhir.validation import check
from health.ingest.provenance import provenance_for_push
from health.ingest.push import Source, prepare_push


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
    response = process_bundle(interactions, bundle, base=base, prefer=prefer)
    confirmed = [
        entry["response"]["location"]
        for entry in response["entry"]
        if entry.get("response", {}).get("location")
    ]
    written = interactions.written[mark:]
    for provenance in provenance_for_push(written, source, confirmed=confirmed):
        interactions.create(check(provenance, "Provenance", interactions.config.types))
    interactions.flush()
    return response
