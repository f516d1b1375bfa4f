"""Care relationships: which parties treat which citizen, derived from what is written.

A relationship is a fact a source system records: an Encounter at an organisation, an
EpisodeOfCare it manages, a CareTeam it or a clinician is part of, a referral
(ServiceRequest) to it. Only entries recorded by an organisation's client or by the
system count (health.access.recorder): a clinician cannot create their own access by
writing an Encounter that names them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from health.access.policy import is_organisation_record
from health.fhir.search.dates import FAR_FUTURE, FAR_PAST
from health.fhir.search.index_rows import IndexRows

# Per resource type: the reference parameters naming the party, and the date parameter
# giving the period. https://hl7.org/fhir/R4/searchparameter-registry.html
RELATIONSHIP_SOURCES: dict[str, tuple[tuple[str, ...], str]] = {
    "Encounter": (("service-provider", "participant"), "date"),
    "EpisodeOfCare": (("organization", "care-manager"), "date"),
    "CareTeam": (("participant",), "date"),
    "ServiceRequest": (("performer",), "authored"),
}
PARTY_TYPES = frozenset({"Organization", "Practitioner"})
# Statuses under which the entry establishes nothing: it did not happen, or not yet.
VOID_STATUSES = {
    "Encounter": frozenset({"cancelled", "entered-in-error"}),
    "EpisodeOfCare": frozenset({"cancelled", "entered-in-error"}),
    "CareTeam": frozenset({"entered-in-error", "proposed"}),
    "ServiceRequest": frozenset({"draft", "revoked", "entered-in-error"}),
}
# Statuses of an entry that is over: an open end of its period then ends at its start.
ENDED_STATUSES = frozenset({"finished", "inactive", "completed"})


@dataclass(frozen=True)
class Relationship:
    party: str
    since: datetime | None
    until: datetime | None


def relationships_of(
    resource_type: str,
    index: IndexRows,
    patient_id: str | None,
    recorded_by: str | None,
    recorded_at: datetime,
) -> list[Relationship]:
    """The relationships one version establishes (none for a deletion's empty index).

    The period is the resource's own (Encounter.period, EpisodeOfCare.period,
    CareTeam.period, ServiceRequest.authoredOn); without one, the moment it was
    recorded. An open end means ongoing, unless the status says it is over.
    """
    source = RELATIONSHIP_SOURCES.get(resource_type)
    if source is None or patient_id is None or not is_organisation_record(recorded_by):
        return []
    statuses = {code for param, _, code, _ in index.tokens if param == "status"}
    if statuses & VOID_STATUSES[resource_type]:
        return []
    party_params, date_param = source
    periods = [(low, high) for param, low, high in index.dates if param == date_param]
    since = min((low for low, _ in periods if low != FAR_PAST), default=recorded_at)
    until = max((high for _, high in periods), default=recorded_at)
    if until >= FAR_FUTURE and statuses & ENDED_STATUSES:
        until = since
    parties = sorted(
        {
            f"{target_type}/{target_id}"
            for param, target_type, target_id, _ in index.references
            if param in party_params and target_type in PARTY_TYPES and target_id
        }
    )
    return [Relationship(party, since, until) for party in parties]
