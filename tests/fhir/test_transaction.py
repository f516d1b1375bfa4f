"""Batch and transaction Bundles: https://hl7.org/fhir/R4/http.html#transaction"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from health.audit.log import AuditLog
from health.db.engine import Database
from health.fhir import transaction
from tests.conftest import TEST_BASE_URL, StoredRecords, bearer
from tests.db.conftest import statements_run

MRN = "http://hospital.example/mrn"
NPI = "http://hl7.org/fhir/sid/us-npi"
CVR = "urn:oid:1.2.208.176.1.1"
PATIENT_URN = "urn:uuid:5b1f6a7e-0c57-4f55-9a43-6d2b2f1d0a01"
ENCOUNTER_URN = "urn:uuid:5b1f6a7e-0c57-4f55-9a43-6d2b2f1d0a02"
OBSERVATION_URN = "urn:uuid:5b1f6a7e-0c57-4f55-9a43-6d2b2f1d0a03"


def bundle(kind: str, *entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def post(resource: dict[str, Any], full_url: str | None = None, **request: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"], **request},
    }
    if full_url:
        entry["fullUrl"] = full_url
    return entry


def put(resource: dict[str, Any], url: str | None = None, **request: str) -> dict[str, Any]:
    target = url or f"{resource['resourceType']}/{resource['id']}"
    return {"resource": resource, "request": {"method": "PUT", "url": target, **request}}


def get(url: str) -> dict[str, Any]:
    return {"request": {"method": "GET", "url": url}}


def delete(url: str) -> dict[str, Any]:
    return {"request": {"method": "DELETE", "url": url}}


def patch(url: str, operations: list[dict[str, Any]]) -> dict[str, Any]:
    binary = {
        "resourceType": "Binary",
        "contentType": "application/json-patch+json",
        "data": base64.b64encode(orjson.dumps(operations)).decode(),
    }
    return {"resource": binary, "request": {"method": "PATCH", "url": url}}


def patient(**elements: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", **elements}


def with_mrn(value: str, **elements: Any) -> dict[str, Any]:
    return patient(identifier=[{"system": MRN, "value": value}], **elements)


def observation(subject: str, **elements: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "body weight"},
        "subject": {"reference": subject},
        **elements,
    }


def created_id(response_entry: dict[str, Any]) -> str:
    """The id in a response entry's location: Type/id/_history/n."""
    return str(response_entry["response"]["location"].split("/")[1])


def entries_of(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    return response.json()["entry"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("path", ["/fhir", "/fhir/"])
def test_transaction_resolves_urn_uuid_references_to_the_new_ids(fhir: Any, path: str) -> None:
    response = fhir.post_bundle(
        bundle(
            "transaction",
            post(observation(PATIENT_URN, encounter={"reference": ENCOUNTER_URN}), OBSERVATION_URN),
            post(
                {
                    "resourceType": "Encounter",
                    "status": "finished",
                    "class": {"code": "AMB"},
                    "subject": {"reference": PATIENT_URN},
                },
                ENCOUNTER_URN,
            ),
            post(with_mrn("123"), PATIENT_URN),
        ),
        path=path,
    )

    assert response.json()["type"] == "transaction-response"
    observation_entry, encounter_entry, patient_entry = entries_of(response)
    patient_id = created_id(patient_entry)
    encounter_id = created_id(encounter_entry)
    stored_observation = fhir.read("Observation", created_id(observation_entry))
    stored_encounter = fhir.read("Encounter", encounter_id)
    assert stored_observation["subject"] == {"reference": f"Patient/{patient_id}"}
    assert stored_observation["encounter"] == {"reference": f"Encounter/{encounter_id}"}
    assert stored_encounter["subject"] == {"reference": f"Patient/{patient_id}"}
    assert fhir.read("Patient", patient_id)["identifier"][0]["value"] == "123"


def test_transaction_rewrites_references_anywhere_in_the_resource(fhir: Any) -> None:
    # References inside backbone elements, arrays and extensions are all rewritten.
    response = fhir.post_bundle(
        bundle(
            "transaction",
            post(patient(), PATIENT_URN),
            post(
                observation(
                    PATIENT_URN,
                    performer=[{"reference": PATIENT_URN}],
                    extension=[
                        {
                            "url": "http://example.org/about",
                            "valueReference": {"reference": PATIENT_URN},
                        }
                    ],
                    hasMember=[{"reference": "Observation/kept-as-is"}],
                ),
            ),
        )
    )

    patient_entry, observation_entry = entries_of(response)
    stored = fhir.read("Observation", created_id(observation_entry))
    expected = {"reference": f"Patient/{created_id(patient_entry)}"}
    assert stored["performer"] == [expected]
    assert stored["extension"][0]["valueReference"] == expected
    assert stored["hasMember"] == [{"reference": "Observation/kept-as-is"}]
    assert PATIENT_URN not in orjson.dumps(stored).decode()


def test_transaction_response_reports_status_location_and_etag_per_entry(fhir: Any) -> None:
    fhir.put(patient(id="pat-1"))

    response = fhir.post_bundle(
        bundle(
            "transaction",
            post(patient(), PATIENT_URN),
            put(patient(id="pat-1", active=True)),
            put(patient(id="pat-2")),
        )
    )

    created, updated, created_by_put = entries_of(response)
    assert created["response"]["status"].startswith("201")
    assert created["response"]["location"].startswith("Patient/")
    assert created["response"]["location"].endswith("/_history/1")
    assert created["response"]["etag"] == 'W/"1"'
    assert created["response"]["lastModified"]
    assert updated["response"]["status"].startswith("200")
    assert updated["response"]["location"] == "Patient/pat-1/_history/2"
    assert updated["response"]["etag"] == 'W/"2"'
    assert created_by_put["response"]["status"].startswith("201")
    assert created_by_put["response"]["etag"] == 'W/"1"'
    # Without Prefer: return=representation, no resources in the answer.
    assert all("resource" not in entry for entry in (created, updated, created_by_put))


def test_prefer_representation_puts_the_stored_resources_in_the_response(fhir: Any) -> None:
    response = fhir.post_bundle(
        bundle("transaction", post(with_mrn("123"), PATIENT_URN), post(observation(PATIENT_URN))),
        prefer="return=representation",
    )

    patient_entry, observation_entry = entries_of(response)
    patient_id = created_id(patient_entry)
    assert patient_entry["resource"]["id"] == patient_id
    assert patient_entry["resource"]["meta"]["versionId"] == "1"
    assert observation_entry["resource"]["subject"] == {"reference": f"Patient/{patient_id}"}
    assert observation_entry["resource"] == fhir.read("Observation", created_id(observation_entry))


def test_conditional_references_are_resolved(fhir: Any) -> None:
    doctor = fhir.create(
        {"resourceType": "Practitioner", "identifier": [{"system": NPI, "value": "42"}]}
    )

    response = fhir.post_bundle(
        bundle(
            "transaction",
            post(
                observation(
                    "Patient/someone",
                    performer=[{"reference": f"Practitioner?identifier={NPI}|42"}],
                )
            ),
        )
    )

    (entry,) = entries_of(response)
    stored = fhir.read("Observation", created_id(entry))
    assert stored["performer"] == [{"reference": f"Practitioner/{doctor['id']}"}]


@pytest.mark.parametrize("doctors", [0, 2])
def test_a_conditional_reference_without_exactly_one_match_fails_the_transaction(
    fhir: Any, doctors: int
) -> None:
    for _ in range(doctors):
        fhir.create(
            {"resourceType": "Practitioner", "identifier": [{"system": NPI, "value": "42"}]}
        )
    before = fhir.stored_version_count()

    response = fhir.post_bundle(
        bundle(
            "transaction",
            post(with_mrn("123"), PATIENT_URN),
            post(
                observation(
                    PATIENT_URN, performer=[{"reference": f"Practitioner?identifier={NPI}|42"}]
                )
            ),
        )
    )

    assert 400 <= response.status_code < 500
    assert "Bundle.entry[1].resource.performer[0].reference" in fhir.expressions(response)
    assert fhir.stored_version_count() == before
    assert fhir.search("Patient") == []


def test_if_none_exist_with_a_match_reuses_it_and_references_point_to_it(fhir: Any) -> None:
    existing = fhir.create(with_mrn("123", gender="female"))

    response = fhir.post_bundle(
        bundle(
            "transaction",
            post(with_mrn("123", gender="male"), PATIENT_URN, ifNoneExist=f"identifier={MRN}|123"),
            post(observation(PATIENT_URN)),
        )
    )

    patient_entry, observation_entry = entries_of(response)
    assert patient_entry["response"]["status"].startswith("200")
    assert f"Patient/{existing['id']}" in patient_entry["response"]["location"]
    assert fhir.read("Patient", existing["id"]) == existing
    stored = fhir.read("Observation", created_id(observation_entry))
    assert stored["subject"] == {"reference": f"Patient/{existing['id']}"}
    assert len(fhir.search("Patient")) == 1


def test_if_none_exist_without_a_match_creates(fhir: Any) -> None:
    response = fhir.post_bundle(
        bundle(
            "transaction",
            post(with_mrn("123"), PATIENT_URN, ifNoneExist=f"identifier={MRN}|123"),
        )
    )

    (entry,) = entries_of(response)
    assert entry["response"]["status"].startswith("201")
    assert len(fhir.search("Patient", identifier=f"{MRN}|123")) == 1


def test_if_none_exist_with_two_matches_fails_the_transaction(fhir: Any) -> None:
    fhir.create(with_mrn("123"))
    fhir.create(with_mrn("123"))

    response = fhir.post_bundle(
        bundle(
            "transaction",
            post(patient(), "urn:uuid:5b1f6a7e-0c57-4f55-9a43-6d2b2f1d0a09"),
            post(with_mrn("123"), PATIENT_URN, ifNoneExist=f"identifier={MRN}|123"),
        )
    )

    assert response.status_code == 412
    assert "Bundle.entry[1]" in fhir.diagnostics(response) + " ".join(fhir.expressions(response))
    assert fhir.stored_version_count() == 2


def test_two_entries_with_the_same_if_none_exist_create_one_resource(fhir: Any) -> None:
    response = fhir.post_bundle(
        bundle(
            "transaction",
            post(with_mrn("123"), PATIENT_URN, ifNoneExist=f"identifier={MRN}|123"),
            post(with_mrn("123"), ENCOUNTER_URN, ifNoneExist=f"identifier={MRN}|123"),
            post(observation(ENCOUNTER_URN)),
        )
    )

    first, second, observation_entry = entries_of(response)
    assert created_id(first) == created_id(second)
    assert len(fhir.search("Patient", identifier=f"{MRN}|123")) == 1
    stored = fhir.read("Observation", created_id(observation_entry))
    assert stored["subject"] == {"reference": f"Patient/{created_id(first)}"}


def test_if_none_exist_entries_are_matched_in_one_lookup(fhir: Any, database: Database) -> None:
    first, second = fhir.create(with_mrn("1")), fhir.create(with_mrn("2", gender="male"))
    conditions = [f"identifier={MRN}|{value}" for value in ("1", "2", "3", "4")]

    with statements_run(database.write_engine) as executed:
        response = fhir.post_bundle(
            bundle(
                "transaction",
                *(
                    post(
                        with_mrn(str(number)),
                        f"urn:uuid:00000000-0000-4000-8000-00000000000{number}",
                        ifNoneExist=condition,
                    )
                    for number, condition in enumerate(conditions, start=1)
                ),
                post(observation("urn:uuid:00000000-0000-4000-8000-000000000002")),
            )
        )

    found_one, found_two, new_three, new_four, observation_entry = entries_of(response)
    assert found_one["response"]["status"].startswith("200")
    assert created_id(found_one) == first["id"]
    assert created_id(found_two) == second["id"]
    assert new_three["response"]["status"].startswith("201")
    assert new_four["response"]["status"].startswith("201")
    stored = fhir.read("Observation", created_id(observation_entry))
    assert stored["subject"] == {"reference": f"Patient/{second['id']}"}
    # The index rows of the four identifiers, read once (not once per entry).
    lookups = [s for s, _ in executed if s.startswith("SELECT DISTINCT search_token.")]
    assert len(lookups) == 1, lookups


def test_if_none_exist_entries_matched_together_still_refuse_two_matches(fhir: Any) -> None:
    fhir.create(with_mrn("123"))
    fhir.create(with_mrn("123"))
    fhir.create(with_mrn("456"))

    response = fhir.post_bundle(
        bundle(
            "transaction",
            post(with_mrn("456"), ENCOUNTER_URN, ifNoneExist=f"identifier={MRN}|456"),
            post(with_mrn("123"), PATIENT_URN, ifNoneExist=f"identifier={MRN}|123"),
        )
    )

    assert response.status_code == 412
    assert "Bundle.entry[1]" in fhir.diagnostics(response) + " ".join(fhir.expressions(response))
    assert fhir.stored_version_count() == 3


def test_a_batch_entry_matches_what_an_earlier_entry_created(fhir: Any) -> None:
    condition = f"identifier={MRN}|123"
    response = fhir.post_bundle(
        bundle(
            "batch",
            post(with_mrn("123"), ifNoneExist=condition),
            post(with_mrn("123"), ifNoneExist=condition),
            post(with_mrn("456"), ifNoneExist=f"identifier={MRN}|456"),
        )
    )

    created, found, other = entries_of(response)
    assert created["response"]["status"].startswith("201")
    assert found["response"]["status"].startswith("200")
    assert created_id(found) == created_id(created)
    assert other["response"]["status"].startswith("201")
    assert len(fhir.search("Patient", identifier=f"{MRN}|123")) == 1


def organization(value: str, **elements: Any) -> dict[str, Any]:
    return {
        "resourceType": "Organization",
        "identifier": [{"system": CVR, "value": value}],
        **elements,
    }


def test_a_batch_matches_its_entries_conditions_in_one_lookup(
    fhir: Any, database: Database
) -> None:
    first, second = fhir.create(organization("1")), fhir.create(organization("2"))

    with statements_run(database.write_engine) as executed:
        response = fhir.post_bundle(
            bundle(
                "batch",
                *(
                    post(organization(value), ifNoneExist=f"identifier={CVR}|{value}")
                    for value in ("1", "2", "3", "4")
                ),
            )
        )

    found_one, found_two, new_three, new_four = entries_of(response)
    assert [created_id(found_one), created_id(found_two)] == [first["id"], second["id"]]
    assert found_one["response"]["status"].startswith("200")
    assert new_three["response"]["status"].startswith("201")
    assert new_four["response"]["status"].startswith("201")
    # Matched together before the first entry, and kept across the writes of the
    # entries that created (they carry other identifiers).
    lookups = [s for s, _ in executed if s.startswith("SELECT DISTINCT search_token.")]
    assert len(lookups) == 1, lookups


@pytest.mark.parametrize("kind", ["batch", "transaction"])
def test_a_bundles_conditional_references_are_matched_in_one_lookup(
    fhir: Any, database: Database, kind: str
) -> None:
    owners = {value: fhir.create(organization(value))["id"] for value in ("1", "2", "3")}
    absolute = f"{TEST_BASE_URL}/fhir/Organization?identifier={CVR}|3"

    def location(reference: str) -> dict[str, Any]:
        return {"resourceType": "Location", "managingOrganization": {"reference": reference}}

    with statements_run(database.write_engine) as executed:
        response = fhir.post_bundle(
            bundle(
                kind,
                post(location(f"Organization?identifier={CVR}|1")),
                post(location(f"Organization?identifier={CVR}|2")),
                post(location(f"Organization?identifier={CVR}|1")),
                post(location(absolute)),
            )
        )

    stored = [fhir.read("Location", created_id(e)) for e in entries_of(response)]
    assert [s["managingOrganization"]["reference"] for s in stored] == [
        f"Organization/{owners[value]}" for value in ("1", "2", "1", "3")
    ]
    lookups = [s for s, _ in executed if s.startswith("SELECT DISTINCT search_token.")]
    assert len(lookups) == 1, lookups


def test_a_batch_entry_does_not_match_what_an_earlier_entry_deleted(fhir: Any) -> None:
    gone = fhir.create(organization("1"))
    fhir.create(organization("2"))

    response = fhir.post_bundle(
        bundle(
            "batch",
            post(organization("1", name="Ny"), ifNoneExist=f"identifier={CVR}|1"),
            post(organization("2"), ifNoneExist=f"identifier={CVR}|2"),
            delete(f"Organization/{gone['id']}"),
        )
    )

    created, found, deleted = entries_of(response)
    assert deleted["response"]["status"].startswith("200")
    assert created["response"]["status"].startswith("201")
    (now,) = fhir.search("Organization", identifier=f"{CVR}|1")
    assert now["id"] == created_id(created) != gone["id"]
    assert found["response"]["status"].startswith("200")


def test_a_batch_conditional_update_finds_what_an_earlier_entry_created(fhir: Any) -> None:
    response = fhir.post_bundle(
        bundle(
            "batch",
            put(organization("5", name="B"), f"Organization?identifier={CVR}|5"),
            post(organization("5", name="A")),
            post(organization("6"), ifNoneExist=f"identifier={CVR}|6"),
        )
    )

    updated, created, _other = entries_of(response)
    assert created["response"]["status"].startswith("201")
    assert updated["response"]["status"].startswith("200")
    assert created_id(updated) == created_id(created)
    (stored,) = fhir.search("Organization", identifier=f"{CVR}|5")
    assert stored["name"] == "B"


def test_a_batch_locks_its_put_targets_together_and_a_failed_entry_keeps_the_locks(
    fhir: Any, database: Database
) -> None:
    for key in ("o1", "o2", "o3"):
        fhir.put(organization(key, id=key))

    with statements_run(database.write_engine) as executed:
        response = fhir.post_bundle(
            bundle(
                "batch",
                put(organization("o1", id="o1", name="Nord")),
                put(organization("o2", id="o2", name="Syd"), ifMatch='W/"9"'),
                put(organization("o3", id="o3", name="Vest")),
            )
        )

    first, stale, third = entries_of(response)
    assert first["response"]["status"].startswith("200")
    assert stale["response"]["status"].startswith("412")
    assert third["response"]["status"].startswith("200")
    assert [fhir.read("Organization", key).get("name") for key in ("o1", "o2", "o3")] == [
        "Nord",
        None,
        "Vest",
    ]
    # The current versions, read (and on PostgreSQL locked) once for the three.
    reads = [s for s, _ in executed if s.startswith("SELECT resource.")]
    assert len(reads) == 1, reads


def test_a_batch_locks_ahead_only_what_the_token_may_update(
    fhir: Any, client: TestClient, database: Database, issue_token: Callable[..., str]
) -> None:
    fhir.put(organization("not-mine", id="not-mine"))
    reader = bearer(issue_token(scope="user/*.rs user/Location.cu"))
    location = {"resourceType": "Location", "id": "l1", "name": "Ambulatoriet"}

    with statements_run(database.write_engine) as executed:
        response = client.post(
            "/fhir",
            json=bundle(
                "batch", put(organization("not-mine", id="not-mine", name="Nord")), put(location)
            ),
            headers={**reader, "Content-Type": "application/fhir+json"},
        )

    refused, created = entries_of(response)
    assert refused["response"]["status"].startswith("403")
    assert created["response"]["status"].startswith("201")
    assert "name" not in fhir.read("Organization", "not-mine")
    # Organization/not-mine was neither read nor locked: the batch holds no lock it cannot use.
    reads = [
        parameters for statement, parameters in executed if statement.startswith("SELECT resource.")
    ]
    assert reads and "not-mine" not in str(reads), reads


def test_a_batch_entrys_conditional_reference_sees_what_earlier_entries_wrote(
    fhir: Any,
) -> None:
    owner = fhir.create(organization("7"))
    run_by = {"reference": f"Organization?identifier={CVR}|7"}
    location = {"resourceType": "Location", "managingOrganization": run_by}

    response = fhir.post_bundle(
        bundle("batch", post(location), post(organization("7")), post(location))
    )

    before, _second_owner, after = entries_of(response)
    assert before["response"]["status"].startswith("201")
    stored = fhir.read("Location", created_id(before))
    assert stored["managingOrganization"] == {"reference": f"Organization/{owner['id']}"}
    # Two Organizations carry the identifier now: the reference is ambiguous.
    assert after["response"]["status"].startswith("412")


def test_a_conditional_update_entry_may_not_overwrite_a_resource_it_did_not_match(
    fhir: Any,
) -> None:
    other = fhir.put(with_mrn("999", id="pat-1", gender="male")).json()

    response = fhir.post_bundle(
        bundle(
            "transaction",
            post(patient(), PATIENT_URN),
            put(with_mrn("123", id="pat-1", gender="female"), f"Patient?identifier={MRN}|123"),
        )
    )

    assert response.status_code == 409
    assert "Bundle.entry[1].resource.id" in fhir.expressions(response)
    assert fhir.read("Patient", "pat-1") == other
    assert fhir.stored_version_count() == 1


def test_a_conditional_update_entry_whose_id_differs_from_its_match_is_400(fhir: Any) -> None:
    existing = fhir.create(with_mrn("123"))

    response = fhir.post_bundle(
        bundle(
            "transaction",
            put(with_mrn("123", id="someone-else"), f"Patient?identifier={MRN}|123"),
        )
    )

    assert response.status_code == 400
    assert any(e.startswith("Bundle.entry[0]") for e in fhir.expressions(response))
    assert fhir.read("Patient", existing["id"]) == existing
    assert fhir.stored_version_count() == 1


def test_conditional_update_entries_create_then_update(fhir: Any) -> None:
    url = f"Patient?identifier={MRN}|123"

    first = fhir.post_bundle(bundle("transaction", put(with_mrn("123", gender="male"), url)))
    second = fhir.post_bundle(bundle("transaction", put(with_mrn("123", gender="female"), url)))

    (created,) = entries_of(first)
    (updated,) = entries_of(second)
    assert created["response"]["status"].startswith("201")
    assert updated["response"]["status"].startswith("200")
    assert created_id(created) == created_id(updated)
    assert fhir.read("Patient", created_id(created))["gender"] == "female"


def test_references_to_a_conditional_update_entry_point_to_its_match(fhir: Any) -> None:
    existing = fhir.create(with_mrn("123"))

    response = fhir.post_bundle(
        bundle(
            "transaction",
            {
                **put(with_mrn("123", active=True), f"Patient?identifier={MRN}|123"),
                "fullUrl": PATIENT_URN,
            },
            post(observation(PATIENT_URN)),
        )
    )

    patient_entry, observation_entry = entries_of(response)
    assert created_id(patient_entry) == existing["id"]
    stored = fhir.read("Observation", created_id(observation_entry))
    assert stored["subject"] == {"reference": f"Patient/{existing['id']}"}


def test_a_get_entry_sees_what_the_same_transaction_posted(fhir: Any) -> None:
    # GET is processed last, whatever its place: https://hl7.org/fhir/R4/http.html#trules
    response = fhir.post_bundle(
        bundle(
            "transaction",
            get(f"Patient?identifier={MRN}|123"),
            post(with_mrn("123"), PATIENT_URN),
        )
    )

    search_entry, patient_entry = entries_of(response)
    assert search_entry["response"]["status"].startswith("200")
    found = search_entry["resource"]
    assert found["type"] == "searchset"
    assert [e["resource"]["id"] for e in found["entry"]] == [created_id(patient_entry)]


def test_delete_runs_before_post(client: TestClient, fhir: Any) -> None:
    old = fhir.create(with_mrn("123"))

    # Listed first, the POST would find the old Patient; DELETE goes first, so it creates.
    response = fhir.post_bundle(
        bundle(
            "transaction",
            post(with_mrn("123", active=True), PATIENT_URN, ifNoneExist=f"identifier={MRN}|123"),
            delete(f"Patient?identifier={MRN}|123"),
        )
    )

    created, deleted = entries_of(response)
    assert deleted["response"]["status"][:3] in ("200", "204")
    assert created["response"]["status"].startswith("201")
    assert created_id(created) != old["id"]
    assert client.get(f"/fhir/Patient/{old['id']}").status_code == 410
    assert [p["id"] for p in fhir.search("Patient")] == [created_id(created)]


def test_put_and_patch_run_after_post(fhir: Any) -> None:
    fhir.put(patient(id="pat-1", gender="male"))

    response = fhir.post_bundle(
        bundle(
            "transaction",
            patch("Patient/pat-1", [{"op": "replace", "path": "/gender", "value": "female"}]),
            put(
                patient(id="pat-2", link=[{"other": {"reference": PATIENT_URN}, "type": "seealso"}])
            ),
            post(patient(), PATIENT_URN),
        )
    )

    patched, put_entry, posted = entries_of(response)
    assert patched["response"]["status"].startswith("200")
    assert patched["response"]["etag"] == 'W/"2"'
    assert put_entry["response"]["status"].startswith("201")
    assert fhir.read("Patient", "pat-1")["gender"] == "female"
    link = fhir.read("Patient", "pat-2")["link"][0]["other"]
    assert link == {"reference": f"Patient/{created_id(posted)}"}


def test_transaction_get_entries_read_vread_and_history(fhir: Any) -> None:
    fhir.put(patient(id="pat-1", gender="male"))
    fhir.put(patient(id="pat-1", gender="female"))

    response = fhir.post_bundle(
        bundle(
            "transaction",
            get("Patient/pat-1"),
            get("Patient/pat-1/_history/1"),
            get("Patient/pat-1/_history"),
        )
    )

    read, vread, history = entries_of(response)
    assert read["resource"]["gender"] == "female"
    assert read["response"]["etag"] == 'W/"2"'
    assert vread["resource"]["gender"] == "male"
    assert history["resource"]["type"] == "history"
    assert len(history["resource"]["entry"]) == 2


def test_transaction_delete_entry_deletes(client: TestClient, fhir: Any) -> None:
    fhir.put(patient(id="pat-1"))

    response = fhir.post_bundle(bundle("transaction", delete("Patient/pat-1")))

    (entry,) = entries_of(response)
    assert entry["response"]["status"][:3] in ("200", "204")
    assert client.get("/fhir/Patient/pat-1").status_code == 410


def test_an_empty_transaction_succeeds_with_an_empty_response(fhir: Any) -> None:
    response = fhir.post_bundle(bundle("transaction"))

    assert response.status_code == 200
    assert response.json()["type"] == "transaction-response"
    assert response.json().get("entry", []) == []


# All or nothing


@pytest.mark.parametrize("path", ["/fhir", "/fhir/"])
def test_one_bad_entry_fails_the_whole_transaction_and_writes_nothing(fhir: Any, path: str) -> None:
    fhir.put(patient(id="pat-1", gender="male"))
    before = fhir.history()

    bad_observation = observation(PATIENT_URN)
    del bad_observation["status"]
    response = fhir.post_bundle(
        bundle(
            "transaction",
            post(with_mrn("123"), PATIENT_URN),
            put(patient(id="pat-1", gender="female")),
            delete("Patient/pat-1"),
            post(bad_observation),
        ),
        path=path,
    )

    assert response.status_code == 400
    assert "Bundle.entry[3].resource.status" in fhir.expressions(response)
    assert fhir.history() == before
    assert fhir.read("Patient", "pat-1")["gender"] == "male"


def test_a_failing_if_match_fails_the_whole_transaction(fhir: Any) -> None:
    fhir.put(patient(id="pat-1"))
    fhir.put(patient(id="pat-1", active=True))
    before = fhir.stored_version_count()

    response = fhir.post_bundle(
        bundle(
            "transaction",
            post(patient(), PATIENT_URN),
            put(patient(id="pat-1", active=False), ifMatch='W/"1"'),
        )
    )

    assert response.status_code == 412
    fhir.outcome(response)
    assert fhir.stored_version_count() == before


def test_a_failing_get_entry_fails_the_transaction_and_rolls_back_its_writes(
    fhir: Any,
) -> None:
    response = fhir.post_bundle(
        bundle("transaction", post(with_mrn("123"), PATIENT_URN), get("Patient/nobody"))
    )

    assert response.status_code == 404
    assert any(e.startswith("Bundle.entry[1]") for e in fhir.expressions(response))
    assert fhir.stored_version_count() == 0


def test_writing_one_resource_twice_in_a_transaction_is_refused(fhir: Any) -> None:
    response = fhir.post_bundle(
        bundle(
            "transaction",
            put(patient(id="pat-1", gender="male")),
            put(patient(id="pat-1", gender="female")),
        )
    )

    assert 400 <= response.status_code < 500
    assert "Patient/pat-1" in fhir.diagnostics(response)
    assert fhir.stored_version_count() == 0


def test_a_duplicate_full_url_is_refused(fhir: Any) -> None:
    response = fhir.post_bundle(
        bundle("transaction", post(patient(), PATIENT_URN), post(patient(), PATIENT_URN))
    )

    assert response.status_code == 400
    assert "Bundle.entry[1].fullUrl" in fhir.expressions(response)
    assert fhir.stored_version_count() == 0


# Batch


@pytest.mark.parametrize("path", ["/fhir", "/fhir/"])
def test_a_batch_answers_each_entry_on_its_own(client: TestClient, fhir: Any, path: str) -> None:
    fhir.put(patient(id="pat-1"))
    bad_observation = observation("Patient/pat-1", status=7)

    response = fhir.post_bundle(
        bundle(
            "batch",
            post(with_mrn("123")),
            post(bad_observation),
            put(patient(id="pat-1", active=True)),
            get("Patient/nobody"),
            {"request": {"method": "POST"}},
        ),
        path=path,
    )

    assert response.status_code == 200
    assert response.json()["type"] == "batch-response"
    created, invalid, updated, missing, malformed = entries_of(response)
    assert created["response"]["status"].startswith("201")
    assert invalid["response"]["status"].startswith("400")
    outcome = invalid["response"]["outcome"]
    assert outcome["resourceType"] == "OperationOutcome"
    assert "Bundle.entry[1].resource.status" in outcome["issue"][0]["expression"]
    assert updated["response"]["status"].startswith("200")
    assert missing["response"]["status"].startswith("404")
    assert missing["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert malformed["response"]["status"].startswith("400")
    assert "Bundle.entry[4]" in orjson.dumps(malformed["response"]["outcome"]).decode()
    # The good entries were written, the bad one was not.
    assert fhir.read("Patient", created_id(created))["identifier"][0]["value"] == "123"
    assert fhir.read("Patient", "pat-1")["active"] is True
    assert fhir.search("Observation") == []


def test_a_batch_does_not_resolve_references_between_its_entries(fhir: Any) -> None:
    # Batch entries may not depend on each other: https://hl7.org/fhir/R4/http.html#brules
    response = fhir.post_bundle(
        bundle("batch", post(patient(), PATIENT_URN), post(observation(PATIENT_URN)))
    )

    created, refused = entries_of(response)
    assert created["response"]["status"].startswith("201")
    assert refused["response"]["status"].startswith("400")
    assert PATIENT_URN in orjson.dumps(refused["response"]["outcome"]).decode()
    assert fhir.search("Observation") == []


def test_a_failed_batch_entry_leaves_no_partial_write(fhir: Any) -> None:
    fhir.put(patient(id="pat-1"))
    fhir.put(patient(id="pat-1", active=True))

    response = fhir.post_bundle(
        bundle(
            "batch",
            put(patient(id="pat-1", active=False), ifMatch='W/"1"'),
            put(patient(id="pat-2")),
        )
    )

    stale, created = entries_of(response)
    assert stale["response"]["status"].startswith("412")
    assert created["response"]["status"].startswith("201")
    assert fhir.read("Patient", "pat-1")["active"] is True
    assert fhir.stored_version_count() == 3


# Batch entries written in groups (health.fhir.transaction._batch_group)


@pytest.fixture(params=[1, 3, 100], ids=["alone", "groups-of-3", "one-group"])
def batch_group(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """The size of a batch's groups of write entries: every answer must be the same."""
    monkeypatch.setattr(transaction, "_BATCH_GROUP", request.param)
    return int(request.param)


def test_a_batch_answers_the_same_in_groups_of_any_size(fhir: Any, batch_group: int) -> None:
    fhir.put(organization("old", id="old"))
    nine = f"identifier={CVR}|9"
    run_by = {"reference": f"Organization?{nine}"}

    response = fhir.post_bundle(
        bundle(
            "batch",
            put(organization("o1", id="o1", name="Nord")),
            put(organization("o1", id="o1", name="Syd")),
            post(organization("9"), ifNoneExist=nine),
            post(organization("9", name="Not written"), ifNoneExist=nine),
            post({"resourceType": "Location", "managingOrganization": run_by}),
            put(patient(id="p1"), ifMatch='W/"3"'),
            post(observation("Patient/p1", status=7)),
            put(patient(id="p1", active=True)),
            post(
                {
                    "resourceType": "Location",
                    "managingOrganization": {"reference": f"Organization?identifier={CVR}|none"},
                }
            ),
            delete("Organization/old"),
            post(organization("10")),
            get("Organization/o1"),
        )
    )

    answers = entries_of(response)
    statuses = " ".join(a["response"]["status"].split()[0] for a in answers)
    assert statuses == "201 200 201 200 201 412 400 201 400 200 201 200"
    assert answers[1]["response"]["etag"] == 'W/"2"'
    assert created_id(answers[3]) == created_id(answers[2])
    location = fhir.read("Location", created_id(answers[4]))
    assert location["managingOrganization"] == {
        "reference": f"Organization/{created_id(answers[2])}"
    }
    assert "none" in orjson.dumps(answers[8]["response"]["outcome"]).decode()
    assert answers[11]["resource"]["name"] == "Syd"
    assert [o.get("name") for o in fhir.search("Organization", identifier=f"{CVR}|9")] == [None]
    assert fhir.read("Patient", "p1")["active"] is True
    assert fhir.search("Observation") == []
    assert {o["id"] for o in fhir.search("Organization")} == {
        "o1",
        created_id(answers[2]),
        created_id(answers[10]),
    }
    # Organization/old: 1 and its deletion; o1: 2; 9, 10, the Location and p1: 1 each.
    assert fhir.stored_version_count() == 8


def test_a_batch_writes_a_group_of_entries_in_one_savepoint(fhir: Any, database: Database) -> None:
    with statements_run(database.write_engine) as executed:
        response = fhir.post_bundle(
            bundle("batch", *(put(organization(f"o{n}", id=f"o{n}")) for n in range(40)))
        )

    assert all(e["response"]["status"].startswith("201") for e in entries_of(response))
    assert len(fhir.search("Organization", _count="100")) == 40
    savepoints = [s for s, _ in executed if s.startswith("SAVEPOINT")]
    assert len(savepoints) == 1, savepoints


@pytest.mark.parametrize(
    "order",
    [(0, 1, 2), (0, 2, 1)],
    # Refused as the group is flushed at its end, or as the third entry's lookup
    # flushes the writes before it.
    ids=["refused-last", "refused-before-a-lookup"],
)
def test_a_batch_entry_refused_as_it_is_stored_fails_alone_in_its_group(
    fhir: Any,
    client: TestClient,
    stored: StoredRecords,
    issue_token: Callable[..., str],
    app: FastAPI,
    database: Database,
    batch_group: int,
    order: tuple[int, int, int],
) -> None:
    fhir.put(patient(id="anna"))
    fhir.put(patient(id="bo"))
    anna = bearer(
        issue_token(
            scope="patient/*.cruds",
            actor_kind="citizen",
            patient_id="anna",
            fhir_user="Patient/anna",
        )
    )
    entries = [
        post(observation("Patient/anna", valueString="first")),
        post(
            observation(
                "Patient/anna",
                valueString="second",
                hasMember=[{"reference": "Observation?value-string=first"}],
            )
        ),
        post(observation("Patient/bo")),
    ]

    response = client.post(
        "/fhir",
        json=bundle("batch", *(entries[i] for i in order)),
        headers={**anna, "Content-Type": "application/fhir+json"},
    )

    answers = entries_of(response)
    first, second, refused = (answers[order.index(i)] for i in range(3))
    assert first["response"]["status"].startswith("201")
    assert second["response"]["status"].startswith("201")
    assert refused["response"]["status"].startswith("403")
    assert "Patient/anna" in orjson.dumps(refused["response"]["outcome"]).decode()
    observations = {o["id"]: o for o in stored.resources("Observation")}
    assert set(observations) == {created_id(first), created_id(second)}
    # Resolved to what the first entry wrote in the end, not in a rolled-back attempt.
    assert observations[created_id(second)]["hasMember"] == [
        {"reference": f"Observation/{created_id(first)}"}
    ]
    # The access log names what the condition showed anna in the end, nothing rolled back.
    with database.session(write=False) as session:
        log = AuditLog(session, app.state.settings.audit_key.encode()).for_patient("anna")
    shown = {e for logged in log for e in logged.entry.entities if e.startswith("Observation/")}
    assert shown == {f"Observation/{created_id(first)}"}


def test_a_batch_with_prefer_representation_returns_the_resources(fhir: Any) -> None:
    response = fhir.post_bundle(
        bundle("batch", post(with_mrn("123")), put(patient(id="pat-1"))),
        prefer="return=representation",
    )

    created, put_created = entries_of(response)
    assert created["resource"]["identifier"][0]["value"] == "123"
    assert put_created["resource"]["id"] == "pat-1"


def test_a_batch_with_prefer_operation_outcome_returns_an_outcome_per_entry(fhir: Any) -> None:
    response = fhir.post_bundle(
        bundle("batch", post(with_mrn("123"))), prefer="return=OperationOutcome"
    )

    (created,) = entries_of(response)
    assert created["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert "resource" not in created


def test_absolute_full_urls_of_put_entries_are_rewritten_to_relative_references(
    fhir: Any,
) -> None:
    response = fhir.post_bundle(
        bundle(
            "transaction",
            {**put(patient(id="pat-1")), "fullUrl": "http://testserver/fhir/Patient/pat-1"},
            post(observation("http://testserver/fhir/Patient/pat-1")),
        )
    )

    _, observation_entry = entries_of(response)
    stored = fhir.read("Observation", created_id(observation_entry))
    assert stored["subject"] == {"reference": "Patient/pat-1"}
