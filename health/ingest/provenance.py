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


def provenance_for_push(
    writes: Sequence[Write],
    source: Source,
    *,
    confirmed: Sequence[str] = (),
    recorded: datetime | None = None,
) -> list[dict[str, Any]]:
    """The Provenance resources recording a push.

    `writes` are the versions it stored; `confirmed` the version references of what it
    sent that was there already (a directory entry another source created first). A
    push that wrote nothing still gets a Provenance naming what it confirmed.
    """
    by_patient: dict[str | None, list[Write]] = {}
    for write in writes:
        by_patient.setdefault(write.patient_id, []).append(write)
    written = {_version_reference(w) for w in writes}
    unwritten = [reference for reference in confirmed if reference not in written]
    if unwritten:
        by_patient.setdefault(None, [])
    moment = instant(recorded or datetime.now(UTC))
    provenances = []
    for patient_id, group in by_patient.items():
        targets = [{"reference": _version_reference(w)} for w in group]
        if patient_id is None:
            targets += [{"reference": reference} for reference in dict.fromkeys(unwritten)]
        if patient_id is not None and not any(w.resource_type == "Patient" for w in group):
            # The citizen's Patient was not written, but this Provenance is about them:
            # naming them puts it in their record (the compartment follows `target`).
            targets.append({"reference": f"Patient/{patient_id}"})
        activities = {_activity(w) for w in group} or {"UPDATE"}
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


def _version_reference(write: Write) -> str:
    return f"{write.resource_type}/{write.id}/_history/{write.version_id}"


def _activity(write: Write) -> str:
    """v3-DataOperation: a first version is a create, whichever method made it (a push
    writes what the source identifies with PUT)."""
    if write.body is None:
        return "DELETE"
    return "CREATE" if write.version_id == 1 else "UPDATE"
