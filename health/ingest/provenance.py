"""One Provenance per push and citizen: what the push wrote, who sent it, and when.

https://hl7.org/fhir/R4/provenance.html. The targets are the versions written (a
version-specific reference, so later changes do not blur what this source said); the
agent is the source Organization, taken from the backend client's token and never from
the Bundle. A push that touches several citizens gets one Provenance each, so that each
lands in that citizen's record (and nobody else's); what belongs to no citizen (the
directory) gets one of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from health.db.versions import Write
from health.fhir.versions import instant
from health.ingest.push import Source

_AUTHOR = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
            "code": "author",
            "display": "Author",
        }
    ]
}
_ACTIVITY = {"POST": "CREATE", "PUT": "UPDATE", "PATCH": "UPDATE", "DELETE": "DELETE"}


def provenance_for_push(
    writes: Sequence[Write], source: Source, recorded: datetime | None = None
) -> list[dict[str, Any]]:
    """The Provenance resources recording `writes` (empty when nothing was written)."""
    by_patient: dict[str | None, list[Write]] = {}
    for write in writes:
        by_patient.setdefault(write.patient_id, []).append(write)
    moment = instant(recorded or datetime.now(UTC))
    provenances = []
    for patient_id, group in by_patient.items():
        targets = [
            {"reference": f"{w.resource_type}/{w.id}/_history/{w.version_id}"} for w in group
        ]
        if patient_id is not None and not any(w.resource_type == "Patient" for w in group):
            # The citizen's Patient was not written, but this Provenance is about them:
            # naming them puts it in their record (the compartment follows `target`).
            targets.append({"reference": f"Patient/{patient_id}"})
        activities = {_ACTIVITY.get(w.method, "UPDATE") for w in group}
        provenance: dict[str, Any] = {
            "resourceType": "Provenance",
            "target": targets,
            "recorded": moment,
            "agent": [
                {"type": _AUTHOR, "who": {"reference": f"Organization/{source.organization_id}"}}
            ],
            "meta": {"source": source.uri},
        }
        if len(activities) == 1:
            provenance["activity"] = {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
                        "code": activities.pop(),
                    }
                ]
            }
        provenances.append(provenance)
    return provenances
