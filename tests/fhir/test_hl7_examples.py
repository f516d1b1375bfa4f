"""The official HL7 FHIR R4 examples: each is stored as sent, or refused for a reason.

Every JSON file in ../shared/data/hl7-examples/ appears in exactly one table below:
resources the server must accept (POST /fhir/{resourceType}), Bundles it must refuse
when they are POSTed to the base URL (each with the reason a reader would give), and
batches it must answer entry by entry. A file that is added to the folder without a
row here fails the first test.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

pytestmark = pytest.mark.shared_data

# The `fhir` fixture is tests/fhir/conftest.py's FhirApi; conftest modules are not
# importable (tests/ has no __init__.py), hence `fhir: Any` in the signatures.

EXAMPLES = "hl7-examples"
FHIR_JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}

# POST /fhir/{resourceType} answers 201 and stores the resource as sent.
ACCEPTED = (
    "allergyintolerance-example.json",
    "allergyintolerance-medication.json",
    "condition-example-f201-fever.json",
    "condition-example.json",
    "consent-example-notThem.json",
    "consent-example-smartonfhir.json",
    "consent-example.json",
    "diagnosticreport-example-dxa.json",
    "diagnosticreport-example-ultrasound.json",
    "encounter-example-f001-heart.json",
    "encounter-example.json",
    "immunization-example-refused.json",
    "immunization-example.json",
    "medicationrequest0301.json",
    "medicationrequest0302.json",
    "medicationrequestexample1.json",
    "observation-example-bloodpressure.json",
    "observation-example-f001-glucose.json",
    "observation-example-heart-rate.json",
    "observation-example-vitals-panel.json",
    "observation-example.json",
    "organization-example.json",
    "patient-example-animal.json",
    "patient-example-chinese.json",
    "patient-example-f001-pieter.json",
    "patient-example-newborn.json",
    "patient-example.json",
    "practitioner-example.json",
)


@dataclass(frozen=True)
class Refused:
    """POST /fhir refuses the whole Bundle, stores nothing, and says why, and where."""

    status: int
    code: str
    expression: str
    says: str
    why: str


_NOT_A_BATCH = "Bundle.type must be batch or transaction"
REFUSED = {
    "bundle-example.json": Refused(
        400,
        "invalid",
        "Bundle.type",
        f"{_NOT_A_BATCH}, not 'searchset'",
        "A searchset is what a search returns, not a set of requests to carry out.",
    ),
    "bundle-response.json": Refused(
        400,
        "invalid",
        "Bundle.type",
        f"{_NOT_A_BATCH}, not 'transaction-response'",
        "A transaction-response is a server's answer; there is nothing in it to do.",
    ),
    "diagnosticreport-example-f001-bloodexam.json": Refused(
        400,
        "invalid",
        "Bundle.type",
        f"{_NOT_A_BATCH}, not 'collection'",
        "A collection Bundle has no requests; the base URL only runs batch/transaction.",
    ),
    "diagnosticreport-example-ghp.json": Refused(
        400,
        "invalid",
        "Bundle.type",
        f"{_NOT_A_BATCH}, not 'collection'",
        "A collection Bundle has no requests; the base URL only runs batch/transaction.",
    ),
    "diagnosticreport-example-lipids.json": Refused(
        400,
        "invalid",
        "Bundle.type",
        f"{_NOT_A_BATCH}, not 'collection'",
        "A collection Bundle has no requests; the base URL only runs batch/transaction.",
    ),
    "bundle-transaction.json": Refused(
        400,
        "not-supported",
        "Bundle.entry[7].request.url",
        "The operation $lookup in 'ValueSet/$lookup' is not supported",
        # The first problem found is named; the example also could not succeed here
        # for other reasons: it assumes a server that already holds Patient/123a at
        # version 2 (entry 4, If-Match W/"2" -> 412) and a Patient with identifier
        # 123456 to delete (entry 6 -> 404), and it searches by name (entry 8), which
        # this server does not support. A transaction is all or nothing.
        "It invokes the ValueSet/$lookup operation, which this server does not offer.",
    ),
}


@dataclass(frozen=True)
class AnsweredEntryByEntry:
    """POST /fhir runs the batch (200 batch-response); each entry gets its own answer."""

    answers: tuple[tuple[str, str], ...]  # (status, what the entry's outcome says)
    why: str


_LIST_UNSUPPORTED = ("400 Bad Request", "Search parameter '_list' is not supported")
_NOTGIVEN_UNSUPPORTED = ("400 Bad Request", "Search parameter 'notgiven' is not supported")
BATCHES = {
    "bundle-request-medsallergies.json": AnsweredEntryByEntry(
        (
            ("404 Not Found", "Patient/example is not known"),
            *[_LIST_UNSUPPORTED] * 3,
            _NOTGIVEN_UNSUPPORTED,
        ),
        # Entry 0 reads Patient/example, which an empty server does not hold (POST
        # assigns its own ids, so loading patient-example.json would not create it).
        # Entries 1-3 search by `patient` and `_list` (current medications, allergies,
        # problems), which this server does not support; entry 4 by `notgiven`, an
        # STU3 parameter that R4 MedicationStatement no longer has. The server refuses
        # rather than ignore a criterion and return every patient's medications.
        "A batch is answered entry by entry; each failure is that entry's own.",
    ),
}


def _read(path: Path) -> dict[str, Any]:
    return orjson.loads(path.read_bytes())  # type: ignore[no-any-return]


def test_every_example_file_has_an_expectation(shared_data: Path) -> None:
    on_disk = sorted(path.name for path in (shared_data / EXAMPLES).glob("*.json"))
    assert on_disk == sorted([*ACCEPTED, *REFUSED, *BATCHES])


@pytest.mark.parametrize("name", ACCEPTED)
def test_an_example_resource_is_stored_as_sent(
    fhir: Any, shared_data: Path, name: str, issue_token: Any
) -> None:
    path = shared_data / EXAMPLES / name
    example = _read(path)
    headers = dict(FHIR_JSON)
    if example["resourceType"] == "Consent":
        # A Consent is the citizen's to write (health/access/): sent with their token.
        patient_id = example["patient"]["reference"].rsplit("/", 1)[-1]
        token = issue_token(actor_kind="citizen", scope="patient/*.cruds", patient_id=patient_id)
        headers["Authorization"] = f"Bearer {token}"

    response = fhir.client.post(
        f"/fhir/{example['resourceType']}", content=path.read_bytes(), headers=headers
    )

    assert response.status_code == 201, response.text
    stored = fhir.client.get(
        f"/fhir/{example['resourceType']}/{response.json()['id']}", headers=headers
    ).json()
    assert _as_sent(stored) == _as_sent(example)


def _as_sent(resource: dict[str, Any]) -> dict[str, Any]:
    """The parts of a resource its author decides: all but id, versionId and lastUpdated.

    A create ignores the client's id (https://hl7.org/fhir/R4/http.html#create) and the
    server sets meta.versionId and meta.lastUpdated.
    """
    kept = {k: v for k, v in resource.items() if k not in ("id", "meta")}
    meta = {
        k: v for k, v in resource.get("meta", {}).items() if k not in ("versionId", "lastUpdated")
    }
    return {**kept, "meta": meta} if meta else kept


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_an_example_bundle_is_refused_for_its_reason(
    fhir: Any, shared_data: Path, name: str
) -> None:
    expected = REFUSED[name]
    path = shared_data / EXAMPLES / name

    response = fhir.client.post("/fhir", content=path.read_bytes(), headers=FHIR_JSON)

    assert response.status_code == expected.status, (response.text, expected.why)
    assert fhir.codes(response) == [expected.code]
    assert expected.says in fhir.diagnostics(response)
    assert fhir.expressions(response) == [expected.expression]
    assert fhir.stored_version_count() == 0


@pytest.mark.parametrize("name", sorted(BATCHES))
def test_an_example_batch_is_answered_entry_by_entry(
    fhir: Any, shared_data: Path, name: str
) -> None:
    expected = BATCHES[name]
    path = shared_data / EXAMPLES / name

    response = fhir.client.post("/fhir", content=path.read_bytes(), headers=FHIR_JSON)

    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["type"] == "batch-response"
    assert len(answer["entry"]) == len(expected.answers)
    for index, (entry, (status, says)) in enumerate(
        zip(answer["entry"], expected.answers, strict=True)
    ):
        assert entry["response"]["status"] == status, (index, entry, expected.why)
        issues = entry["response"]["outcome"]["issue"]
        assert says in issues[0]["diagnostics"], (index, issues)
        assert issues[0]["expression"] == [f"Bundle.entry[{index}]"]
