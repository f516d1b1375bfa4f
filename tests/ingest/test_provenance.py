"""health.ingest.provenance: one Provenance per push and citizen, valid as built.

The push path validates them like any resource it stores (health.ingest.pipeline), so
a Provenance built wrong would fail every push: each shape it can take is validated
here first.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from health import PROJECT_ROOT
from health.db.versions import Write
from health.fhir.resource_types import ResourceTypes
from health.fhir.validation import check
from health.ingest.provenance import provenance_for_push
from health.ingest.push import Source

SOURCE = Source("hvidovre", "http://example.org/fhir/Organization/hvidovre")
AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def types() -> ResourceTypes:
    return ResourceTypes(PROJECT_ROOT / "fhir")


def _write(
    resource_type: str,
    resource_id: str,
    version: int,
    patient: str | None,
    *,
    deleted: bool = False,
) -> Write:
    return Write(
        resource_type=resource_type,
        id=resource_id,
        version_id=version,
        last_updated=AT,
        method="DELETE" if deleted else "PUT",
        body=None if deleted else b"{}",
        patient_id=patient,
    )


def _targets(provenance: dict[str, Any]) -> list[str]:
    return [target["reference"] for target in provenance["target"]]


def _activity(provenance: dict[str, Any]) -> str | None:
    activity = provenance.get("activity")
    return activity["coding"][0]["code"] if activity else None


PUSHES = {
    "a citizen's Patient and results": (
        [_write("Patient", "anna", 1, "anna"), _write("Observation", "o1", 1, "anna")],
        [],
    ),
    "two citizens": (
        [_write("Observation", "o1", 2, "anna"), _write("Observation", "o2", 1, "bo")],
        [],
    ),
    "the directory, some of it there already": (
        [_write("Organization", "ward", 1, None)],
        ["Practitioner/p1/_history/3", "Organization/ward/_history/1"],
    ),
    "nothing written, something confirmed": ([], ["Organization/ward/_history/2"]),
    "a deletion": ([_write("Observation", "o1", 3, "anna", deleted=True)], []),
}


@pytest.mark.parametrize("push", PUSHES)
def test_every_provenance_a_push_can_make_is_valid(types: ResourceTypes, push: str) -> None:
    writes, confirmed = PUSHES[push]
    provenances = provenance_for_push(writes, SOURCE, confirmed=confirmed, recorded=AT)

    assert provenances
    for provenance in provenances:
        assert check(provenance, "Provenance", types).resource is provenance
        assert provenance["agent"][0]["who"] == {"reference": "Organization/hvidovre"}
        assert provenance["meta"] == {"source": SOURCE.uri}
        assert provenance["recorded"] == "2026-03-01T12:00:00.000000Z"


def test_one_provenance_per_citizen_naming_the_versions_written() -> None:
    writes, _ = PUSHES["two citizens"]
    anna, bo = provenance_for_push(writes, SOURCE, recorded=AT)

    # The Patient was not written: naming it puts the Provenance in the citizen's record.
    assert _targets(anna) == ["Observation/o1/_history/2", "Patient/anna"]
    assert _targets(bo) == ["Observation/o2/_history/1", "Patient/bo"]
    assert (_activity(anna), _activity(bo)) == ("UPDATE", "CREATE")


def test_the_directory_gets_one_of_its_own_with_what_was_there_already() -> None:
    writes, confirmed = PUSHES["the directory, some of it there already"]
    (directory,) = provenance_for_push(writes, SOURCE, confirmed=confirmed, recorded=AT)

    assert _targets(directory) == ["Organization/ward/_history/1", "Practitioner/p1/_history/3"]


def test_mixed_activities_name_none() -> None:
    writes = [_write("Patient", "anna", 1, "anna"), _write("Observation", "o1", 4, "anna")]
    (provenance,) = provenance_for_push(writes, SOURCE, recorded=AT)

    assert _activity(provenance) is None
    assert _activity(provenance_for_push(PUSHES["a deletion"][0], SOURCE)[0]) == "DELETE"
