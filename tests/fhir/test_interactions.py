"""The RESTful interactions on single resources, over HTTP.

https://hl7.org/fhir/R4/http.html: read, vread, create, update, patch, delete, their
conditional forms, versioning headers, Prefer, and the output parameters of a read.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from health.db.engine import Database
from health.db.repository import Repository
from health.fhir.interactions import Interactions
from health.fhir.validation import check

FHIR_JSON = {"Content-Type": "application/fhir+json"}
MRN = "http://hospital.example/mrn"
SUBSETTED = "SUBSETTED"


def patient(**elements: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", **elements}


def with_mrn(value: str, **elements: Any) -> dict[str, Any]:
    return patient(identifier=[{"system": MRN, "value": value}], **elements)


def tag_codes(resource: dict[str, Any]) -> list[str]:
    return [tag.get("code") for tag in resource.get("meta", {}).get("tag", [])]


# read and vread


def test_read_returns_the_resource_with_version_headers(client: TestClient, fhir: Any) -> None:
    created = fhir.create(patient(name=[{"family": "Jensen"}], gender="female"))

    response = client.get(f"/fhir/Patient/{created['id']}")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/fhir+json")
    assert response.json() == created
    assert response.headers["ETag"] == 'W/"1"'
    last_modified = parsedate_to_datetime(response.headers["Last-Modified"])
    last_updated = datetime.fromisoformat(created["meta"]["lastUpdated"].replace("Z", "+00:00"))
    # HTTP dates have whole seconds; meta.lastUpdated has microseconds.
    assert last_modified == last_updated.replace(microsecond=0)


def test_read_of_an_unknown_resource_is_404_with_an_outcome(client: TestClient, fhir: Any) -> None:
    response = client.get("/fhir/Patient/does-not-exist")

    assert response.status_code == 404
    assert "Patient/does-not-exist" in fhir.diagnostics(response)
    assert fhir.codes(response) == ["not-found"]


def test_vread_returns_each_version_as_it_was(client: TestClient, fhir: Any) -> None:
    first = fhir.create(patient(name=[{"family": "Before"}]))
    second = fhir.put({**first, "name": [{"family": "After"}]}).json()

    old = client.get(f"/fhir/Patient/{first['id']}/_history/1")
    new = client.get(f"/fhir/Patient/{first['id']}/_history/2")

    assert old.status_code == 200 and new.status_code == 200
    assert old.json()["name"] == [{"family": "Before"}]
    assert old.headers["ETag"] == 'W/"1"'
    assert new.json() == second
    assert new.headers["ETag"] == 'W/"2"'


@pytest.mark.parametrize("version", ["3", "0", "latest"])
def test_vread_of_a_version_that_does_not_exist_is_404(
    client: TestClient, fhir: Any, version: str
) -> None:
    created = fhir.create(patient())
    fhir.put({**created, "active": True})

    response = client.get(f"/fhir/Patient/{created['id']}/_history/{version}")

    assert response.status_code == 404
    fhir.outcome(response)


# create


def test_create_assigns_a_server_id_and_ignores_the_clients_id_and_meta(
    client: TestClient, fhir: Any
) -> None:
    response = client.post(
        "/fhir/Patient",
        json=patient(
            id="chosen-by-client",
            meta={"versionId": "7", "lastUpdated": "2001-01-01T00:00:00Z", "source": "lab-x"},
        ),
        headers=FHIR_JSON,
    )

    assert response.status_code == 201
    body = response.json()
    assert body["id"] != "chosen-by-client"
    assert body["meta"]["versionId"] == "1"
    assert not body["meta"]["lastUpdated"].startswith("2001")
    # Other meta elements the client sent are kept.
    assert body["meta"]["source"] == "lab-x"
    assert response.headers["Location"] == (
        f"http://testserver/fhir/Patient/{body['id']}/_history/1"
    )
    assert response.headers["ETag"] == 'W/"1"'
    assert client.get("/fhir/Patient/chosen-by-client").status_code == 404


def test_each_create_makes_a_new_resource(fhir: Any) -> None:
    first = fhir.create(patient())
    second = fhir.create(patient())

    assert first["id"] != second["id"]
    assert len(fhir.search("Patient")) == 2


# update


def test_update_with_a_new_client_id_creates_then_updates(client: TestClient, fhir: Any) -> None:
    created = fhir.put(patient(id="pat-1", gender="male"))

    assert created.status_code == 201
    assert created.json()["id"] == "pat-1"
    assert created.json()["meta"]["versionId"] == "1"
    assert created.headers["ETag"] == 'W/"1"'
    assert created.headers["Location"].endswith("/fhir/Patient/pat-1/_history/1")

    updated = fhir.put(patient(id="pat-1", gender="female"))

    assert updated.status_code == 200
    assert updated.json()["meta"]["versionId"] == "2"
    assert updated.headers["ETag"] == 'W/"2"'
    assert updated.json()["meta"]["lastUpdated"] > created.json()["meta"]["lastUpdated"]
    assert fhir.read("Patient", "pat-1")["gender"] == "female"


def test_update_replaces_the_whole_resource(fhir: Any) -> None:
    fhir.put(patient(id="pat-1", gender="male", birthDate="1970-01-01"))

    fhir.put(patient(id="pat-1", gender="male"))

    assert "birthDate" not in fhir.read("Patient", "pat-1")


def test_update_with_matching_if_match_succeeds(fhir: Any) -> None:
    fhir.put(patient(id="pat-1"))

    response = fhir.put(patient(id="pat-1", active=True), if_match='W/"1"')

    assert response.status_code == 200
    assert response.headers["ETag"] == 'W/"2"'


@pytest.mark.parametrize("stale", ['W/"1"', '"1"', 'W/"3"'])
def test_update_with_a_stale_if_match_is_412_and_changes_nothing(fhir: Any, stale: str) -> None:
    fhir.put(patient(id="pat-1", active=False))
    fhir.put(patient(id="pat-1", active=False, gender="other"))

    response = fhir.put(patient(id="pat-1", active=True), if_match=stale)

    assert response.status_code == 412
    assert "version" in fhir.diagnostics(response)
    current = fhir.read("Patient", "pat-1")
    assert current["meta"]["versionId"] == "2"
    assert current["active"] is False


def test_update_with_if_match_on_a_missing_resource_is_412(client: TestClient, fhir: Any) -> None:
    response = fhir.put(patient(id="pat-1"), if_match='W/"1"')

    assert response.status_code == 412
    assert client.get("/fhir/Patient/pat-1").status_code == 404


@pytest.mark.parametrize("malformed", ["garbage", 'W/"abc"', "W/", "*1"])
def test_update_with_a_malformed_if_match_is_400(fhir: Any, malformed: str) -> None:
    fhir.put(patient(id="pat-1"))

    response = fhir.put(patient(id="pat-1", active=True), if_match=malformed)

    assert response.status_code == 400
    assert "If-Match" in fhir.diagnostics(response)
    assert fhir.read("Patient", "pat-1")["meta"]["versionId"] == "1"


# delete


def test_delete_leaves_a_versioned_tombstone(client: TestClient, fhir: Any) -> None:
    fhir.put(patient(id="pat-1"))

    deleted = client.delete("/fhir/Patient/pat-1")

    assert deleted.status_code in (200, 204)
    read = client.get("/fhir/Patient/pat-1")
    assert read.status_code == 410
    assert fhir.codes(read) == ["deleted"]
    # The deletion is version 2: reading it is 410, the version before it is still there.
    assert client.get("/fhir/Patient/pat-1/_history/2").status_code == 410
    assert client.get("/fhir/Patient/pat-1/_history/1").status_code == 200
    assert fhir.search("Patient") == []


def test_update_after_delete_brings_the_resource_back_as_a_new_version(
    client: TestClient, fhir: Any
) -> None:
    fhir.put(patient(id="pat-1", gender="male"))
    client.delete("/fhir/Patient/pat-1")

    revived = fhir.put(patient(id="pat-1", gender="female"))

    assert revived.status_code == 201
    assert revived.json()["meta"]["versionId"] == "3"
    assert revived.headers["ETag"] == 'W/"3"'
    assert fhir.read("Patient", "pat-1")["gender"] == "female"


def test_delete_of_a_deleted_or_unknown_resource_succeeds_without_a_new_version(
    client: TestClient, fhir: Any
) -> None:
    fhir.put(patient(id="pat-1"))
    client.delete("/fhir/Patient/pat-1")

    again = client.delete("/fhir/Patient/pat-1")
    unknown = client.delete("/fhir/Patient/never-existed")

    assert again.status_code in (200, 204)
    assert unknown.status_code in (200, 204, 404)
    assert fhir.stored_version_count() == 2


def test_delete_with_a_stale_if_match_is_412_and_keeps_the_resource(
    client: TestClient, fhir: Any
) -> None:
    fhir.put(patient(id="pat-1"))
    fhir.put(patient(id="pat-1", active=True))

    stale = client.delete("/fhir/Patient/pat-1", headers={"If-Match": 'W/"1"'})

    assert stale.status_code == 412
    fhir.outcome(stale)
    assert client.get("/fhir/Patient/pat-1").status_code == 200

    current = client.delete("/fhir/Patient/pat-1", headers={"If-Match": 'W/"2"'})

    assert current.status_code in (200, 204)
    assert client.get("/fhir/Patient/pat-1").status_code == 410


def test_delete_with_a_malformed_if_match_is_400(client: TestClient, fhir: Any) -> None:
    fhir.put(patient(id="pat-1"))

    response = client.delete("/fhir/Patient/pat-1", headers={"If-Match": "version one"})

    assert response.status_code == 400
    assert "If-Match" in fhir.diagnostics(response)
    assert client.get("/fhir/Patient/pat-1").status_code == 200


# conditional create: https://hl7.org/fhir/R4/http.html#ccreate


def test_conditional_create_with_no_match_creates(client: TestClient, fhir: Any) -> None:
    response = client.post(
        "/fhir/Patient",
        json=with_mrn("123"),
        headers={**FHIR_JSON, "If-None-Exist": f"identifier={MRN}|123"},
    )

    assert response.status_code == 201
    assert len(fhir.search("Patient", identifier=f"{MRN}|123")) == 1


def test_conditional_create_with_one_match_returns_the_existing_resource(
    client: TestClient, fhir: Any
) -> None:
    existing = fhir.create(with_mrn("123", gender="female"))

    response = client.post(
        "/fhir/Patient",
        json=with_mrn("123", gender="male"),
        headers={**FHIR_JSON, "If-None-Exist": f"identifier={MRN}|123"},
    )

    assert response.status_code == 200
    assert response.json() == existing
    assert response.headers["ETag"] == 'W/"1"'
    assert f"/fhir/Patient/{existing['id']}" in response.headers["Location"]
    assert fhir.stored_version_count() == 1


def test_conditional_create_with_two_matches_is_412(client: TestClient, fhir: Any) -> None:
    fhir.create(with_mrn("123"))
    fhir.create(with_mrn("123"))

    response = client.post(
        "/fhir/Patient",
        json=with_mrn("123"),
        headers={**FHIR_JSON, "If-None-Exist": f"identifier={MRN}|123"},
    )

    assert response.status_code == 412
    fhir.outcome(response)
    assert fhir.stored_version_count() == 2


def test_conditional_create_after_the_match_was_deleted_creates_again(
    client: TestClient, fhir: Any
) -> None:
    headers = {**FHIR_JSON, "If-None-Exist": f"identifier={MRN}|123"}
    first = client.post("/fhir/Patient", json=with_mrn("123"), headers=headers)
    client.delete(f"/fhir/Patient/{first.json()['id']}")

    second = client.post("/fhir/Patient", json=with_mrn("123"), headers=headers)

    assert second.status_code == 201
    assert second.json()["id"] != first.json()["id"]


def test_conditional_create_with_an_unsupported_criterion_is_400(
    client: TestClient, fhir: Any
) -> None:
    response = client.post(
        "/fhir/Patient",
        json=with_mrn("123"),
        headers={**FHIR_JSON, "If-None-Exist": "nickname=Jensen"},
    )

    assert response.status_code == 400
    assert "nickname" in fhir.diagnostics(response)
    assert fhir.stored_version_count() == 0


# conditional update: https://hl7.org/fhir/R4/http.html#cond-update


def test_conditional_update_with_no_match_creates_with_a_server_id(
    client: TestClient, fhir: Any
) -> None:
    response = client.put(
        "/fhir/Patient",
        params={"identifier": f"{MRN}|123"},
        json=with_mrn("123"),
        headers=FHIR_JSON,
    )

    assert response.status_code == 201
    assert response.json()["id"]
    assert response.headers["Location"].endswith(f"/Patient/{response.json()['id']}/_history/1")


def test_conditional_update_with_no_match_and_a_body_id_creates_with_that_id(
    client: TestClient, fhir: Any
) -> None:
    response = client.put(
        "/fhir/Patient",
        params={"identifier": f"{MRN}|123"},
        json=with_mrn("123", id="pat-1"),
        headers=FHIR_JSON,
    )

    assert response.status_code == 201
    assert fhir.read("Patient", "pat-1")["identifier"][0]["value"] == "123"


def test_conditional_update_with_one_match_updates_it(client: TestClient, fhir: Any) -> None:
    existing = fhir.create(with_mrn("123", gender="male"))

    response = client.put(
        "/fhir/Patient",
        params={"identifier": f"{MRN}|123"},
        json=with_mrn("123", gender="female"),
        headers=FHIR_JSON,
    )

    assert response.status_code == 200
    assert response.json()["id"] == existing["id"]
    assert response.headers["ETag"] == 'W/"2"'
    assert fhir.read("Patient", existing["id"])["gender"] == "female"
    assert len(fhir.search("Patient")) == 1


def test_conditional_update_with_one_match_and_the_same_body_id_updates_it(
    client: TestClient, fhir: Any
) -> None:
    existing = fhir.create(with_mrn("123"))

    response = client.put(
        "/fhir/Patient",
        params={"identifier": f"{MRN}|123"},
        json=with_mrn("123", id=existing["id"], active=True),
        headers=FHIR_JSON,
    )

    assert response.status_code == 200
    assert fhir.read("Patient", existing["id"])["active"] is True


def test_conditional_update_whose_body_id_differs_from_the_match_is_400(
    client: TestClient, fhir: Any
) -> None:
    existing = fhir.create(with_mrn("123"))

    response = client.put(
        "/fhir/Patient",
        params={"identifier": f"{MRN}|123"},
        json=with_mrn("123", id="someone-else", active=True),
        headers=FHIR_JSON,
    )

    assert response.status_code == 400
    assert "Patient.id" in fhir.expressions(response)
    assert fhir.read("Patient", existing["id"])["meta"]["versionId"] == "1"
    assert client.get("/fhir/Patient/someone-else").status_code == 404


def test_conditional_update_with_many_matches_is_412(client: TestClient, fhir: Any) -> None:
    fhir.create(with_mrn("123"))
    fhir.create(with_mrn("123"))

    response = client.put(
        "/fhir/Patient",
        params={"identifier": f"{MRN}|123"},
        json=with_mrn("123", active=True),
        headers=FHIR_JSON,
    )

    assert response.status_code == 412
    fhir.outcome(response)
    assert fhir.stored_version_count() == 2


def test_conditional_update_honours_if_match(client: TestClient, fhir: Any) -> None:
    fhir.create(with_mrn("123"))

    response = client.put(
        "/fhir/Patient",
        params={"identifier": f"{MRN}|123"},
        json=with_mrn("123", active=True),
        headers={**FHIR_JSON, "If-Match": 'W/"9"'},
    )

    assert response.status_code == 412
    assert fhir.stored_version_count() == 1


def test_a_conditional_update_whose_match_another_request_created_meanwhile_updates_it(
    app: FastAPI, database: Database, stored: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The race, in-process: nothing matched, and as this request went to create, another
    # request took the claim and stored its Patient first. A batch's conditional update
    # (a source pushing a citizen that another source pushes at the same moment) must
    # then update that Patient, not answer with it and drop what it was sent.
    config = app.state.fhir_config
    condition = f"identifier={MRN}|555"
    taken = Repository.claim

    def another_request_first(repository: Repository, *claim: str) -> bool:
        other = Interactions(repository, config)
        other.create(check(with_mrn("555", gender="female"), "Patient", config.types))
        other.flush()
        monkeypatch.setattr(Repository, "claim", taken)
        return False

    monkeypatch.setattr(Repository, "claim", another_request_first)
    with database.session(write=True) as session:
        interactions = Interactions(Repository.system(session), config)
        sent = check(with_mrn("555", active=True), "Patient", config.types)
        result = interactions.conditional_update(condition, sent)
        interactions.flush()

    assert result.status == 200
    (patient_now,) = stored.resources(f"Patient?identifier={MRN}|555")
    assert patient_now["active"] is True
    assert patient_now["meta"]["versionId"] == "2"


def test_put_on_the_type_without_criteria_is_400(client: TestClient, fhir: Any) -> None:
    response = client.put("/fhir/Patient", json=patient(), headers=FHIR_JSON)

    assert response.status_code == 400
    fhir.outcome(response)
    assert fhir.stored_version_count() == 0


# conditional delete


def test_conditional_delete_with_no_match_is_404(client: TestClient, fhir: Any) -> None:
    fhir.create(with_mrn("other"))

    response = client.delete("/fhir/Patient", params={"identifier": f"{MRN}|123"})

    assert response.status_code == 404
    fhir.outcome(response)
    assert fhir.stored_version_count() == 1


def test_conditional_delete_with_one_match_deletes_it(client: TestClient, fhir: Any) -> None:
    target = fhir.create(with_mrn("123"))
    bystander = fhir.create(with_mrn("456"))

    response = client.delete("/fhir/Patient", params={"identifier": f"{MRN}|123"})

    assert response.status_code in (200, 204)
    assert client.get(f"/fhir/Patient/{target['id']}").status_code == 410
    assert client.get(f"/fhir/Patient/{bystander['id']}").status_code == 200


def test_conditional_delete_with_many_matches_is_412_and_deletes_nothing(
    client: TestClient, fhir: Any
) -> None:
    first = fhir.create(with_mrn("123"))
    second = fhir.create(with_mrn("123"))

    response = client.delete("/fhir/Patient", params={"identifier": f"{MRN}|123"})

    assert response.status_code == 412
    fhir.outcome(response)
    assert client.get(f"/fhir/Patient/{first['id']}").status_code == 200
    assert client.get(f"/fhir/Patient/{second['id']}").status_code == 200


def test_delete_on_the_type_without_criteria_is_400(client: TestClient, fhir: Any) -> None:
    kept = fhir.create(patient())

    response = client.delete("/fhir/Patient")

    assert response.status_code == 400
    fhir.outcome(response)
    assert client.get(f"/fhir/Patient/{kept['id']}").status_code == 200


# patch: https://hl7.org/fhir/R4/http.html#patch

JSON_PATCH = {"Content-Type": "application/json-patch+json"}


def test_json_patch_changes_the_resource_and_makes_a_version(client: TestClient, fhir: Any) -> None:
    fhir.put(patient(id="pat-1", gender="male", name=[{"family": "Hansen"}]))

    response = client.patch(
        "/fhir/Patient/pat-1",
        content=orjson.dumps(
            [
                {"op": "replace", "path": "/gender", "value": "female"},
                {"op": "add", "path": "/name/0/given", "value": ["Karen"]},
            ]
        ),
        headers=JSON_PATCH,
    )

    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == 'W/"2"'
    stored = fhir.read("Patient", "pat-1")
    assert stored["gender"] == "female"
    assert stored["name"] == [{"family": "Hansen", "given": ["Karen"]}]
    assert stored["meta"]["versionId"] == "2"


def test_json_patch_honours_if_match(client: TestClient, fhir: Any) -> None:
    fhir.put(patient(id="pat-1", gender="male"))
    fhir.put(patient(id="pat-1", gender="male", active=True))
    operations = orjson.dumps([{"op": "replace", "path": "/gender", "value": "female"}])

    stale = client.patch(
        "/fhir/Patient/pat-1", content=operations, headers={**JSON_PATCH, "If-Match": 'W/"1"'}
    )

    assert stale.status_code == 412
    assert fhir.read("Patient", "pat-1")["gender"] == "male"


@pytest.mark.parametrize(
    ("operations", "reason"),
    [
        ([{"op": "replace", "path": "/gender", "value": 42}], "makes the resource invalid"),
        ([{"op": "add", "path": "/favouriteColour", "value": "blue"}], "adds an unknown element"),
        ([{"op": "replace", "path": "/id", "value": "other"}], "changes the id"),
        ([{"op": "remove", "path": "/birthDate"}], "removes what is not there"),
        ([{"op": "test", "path": "/gender", "value": "female"}], "has a failing test"),
        ({"op": "replace", "path": "/gender", "value": "female"}, "is not an array"),
    ],
)
def test_a_json_patch_that_cannot_apply_is_400_and_changes_nothing(
    client: TestClient, fhir: Any, operations: Any, reason: str
) -> None:
    fhir.put(patient(id="pat-1", gender="male"))

    response = client.patch(
        "/fhir/Patient/pat-1", content=orjson.dumps(operations), headers=JSON_PATCH
    )

    assert response.status_code == 400, reason
    fhir.outcome(response)
    assert fhir.read("Patient", "pat-1")["meta"]["versionId"] == "1"


def test_json_patch_of_an_unknown_or_deleted_resource_is_an_error(
    client: TestClient, fhir: Any
) -> None:
    fhir.put(patient(id="pat-1"))
    client.delete("/fhir/Patient/pat-1")
    operations = orjson.dumps([{"op": "add", "path": "/active", "value": True}])

    deleted = client.patch("/fhir/Patient/pat-1", content=operations, headers=JSON_PATCH)
    unknown = client.patch("/fhir/Patient/pat-2", content=operations, headers=JSON_PATCH)

    assert deleted.status_code in (404, 410)
    assert unknown.status_code == 404
    assert fhir.stored_version_count() == 2


# Prefer: https://hl7.org/fhir/R4/http.html#ops


def test_prefer_return_minimal_sends_headers_but_no_body(client: TestClient) -> None:
    response = client.post(
        "/fhir/Patient", json=patient(), headers={**FHIR_JSON, "Prefer": "return=minimal"}
    )

    assert response.status_code == 201
    assert response.content == b""
    assert response.headers["ETag"] == 'W/"1"'
    assert "/fhir/Patient/" in response.headers["Location"]
    assert client.get(response.headers["Location"]).status_code == 200


def test_prefer_return_representation_sends_the_stored_resource(client: TestClient) -> None:
    response = client.put(
        "/fhir/Patient/pat-1",
        json=patient(id="pat-1", active=True),
        headers={**FHIR_JSON, "Prefer": "return=representation"},
    )

    assert response.status_code == 201
    assert response.json()["active"] is True
    assert response.json()["meta"]["versionId"] == "1"


def test_prefer_return_operation_outcome_sends_an_outcome(client: TestClient, fhir: Any) -> None:
    response = client.post(
        "/fhir/Patient",
        json=patient(),
        headers={**FHIR_JSON, "Prefer": "return=OperationOutcome"},
    )

    assert response.status_code == 201
    outcome = fhir.outcome(response)
    assert outcome["issue"][0]["severity"] == "information"
    assert response.headers["Location"]


def test_prefer_return_minimal_applies_to_patch(client: TestClient, fhir: Any) -> None:
    fhir.put(patient(id="pat-1"))

    response = client.patch(
        "/fhir/Patient/pat-1",
        content=orjson.dumps([{"op": "add", "path": "/active", "value": True}]),
        headers={**JSON_PATCH, "Prefer": "return=minimal"},
    )

    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["ETag"] == 'W/"2"'


# _summary, _elements, _pretty, _format: https://hl7.org/fhir/R4/http.html#parameters

NARRATIVE = {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">Jensen</div>'}


def rich_patient() -> dict[str, Any]:
    return patient(
        id="pat-1",
        text=NARRATIVE,
        name=[{"family": "Jensen"}],
        gender="female",
        maritalStatus={"text": "married"},
        photo=[{"contentType": "image/png", "data": base64.b64encode(b"png").decode()}],
    )


def test_summary_true_keeps_only_summary_elements_and_tags_subsetted(
    client: TestClient, fhir: Any
) -> None:
    fhir.put(rich_patient())

    summary = client.get("/fhir/Patient/pat-1", params={"_summary": "true"}).json()

    assert summary["name"] == [{"family": "Jensen"}]
    assert summary["gender"] == "female"
    assert "maritalStatus" not in summary
    assert "photo" not in summary
    assert "text" not in summary
    assert summary["id"] == "pat-1"
    assert summary["meta"]["versionId"] == "1"
    assert SUBSETTED in tag_codes(summary)


def test_summary_text_keeps_the_narrative_and_mandatory_elements(
    client: TestClient, fhir: Any
) -> None:
    observation = fhir.create(
        {
            "resourceType": "Observation",
            "text": NARRATIVE,
            "status": "final",
            "code": {"text": "weight"},
            "valueQuantity": {"value": 70, "unit": "kg"},
            "note": [{"text": "after lunch"}],
        }
    )

    text = client.get(f"/fhir/Observation/{observation['id']}", params={"_summary": "text"}).json()

    assert text["text"] == NARRATIVE
    # status and code are mandatory (1..1) in Observation.
    assert text["status"] == "final"
    assert text["code"] == {"text": "weight"}
    assert "valueQuantity" not in text
    assert "note" not in text
    assert SUBSETTED in tag_codes(text)


def test_summary_data_drops_only_the_narrative(client: TestClient, fhir: Any) -> None:
    fhir.put(rich_patient())

    data = client.get("/fhir/Patient/pat-1", params={"_summary": "data"}).json()

    assert "text" not in data
    assert data["maritalStatus"] == {"text": "married"}
    assert data["photo"]


def test_summary_data_tags_the_resource_subsetted(client: TestClient, fhir: Any) -> None:
    # The narrative is gone, so the resource must not be taken for the whole one
    # (a client that PUTs it back would erase the narrative):
    # https://hl7.org/fhir/R4/search.html#summary
    fhir.put(rich_patient())

    data = client.get("/fhir/Patient/pat-1", params={"_summary": "data"}).json()

    assert SUBSETTED in tag_codes(data)


def test_summary_false_returns_the_whole_resource(client: TestClient, fhir: Any) -> None:
    fhir.put(rich_patient())

    whole = client.get("/fhir/Patient/pat-1", params={"_summary": "false"}).json()

    assert whole == fhir.read("Patient", "pat-1")
    assert SUBSETTED not in tag_codes(whole)


def test_summary_applies_to_vread(client: TestClient, fhir: Any) -> None:
    fhir.put(rich_patient())
    fhir.put({**rich_patient(), "gender": "other"})

    old = client.get("/fhir/Patient/pat-1/_history/1", params={"_summary": "true"}).json()

    assert old["gender"] == "female"
    assert "maritalStatus" not in old
    assert SUBSETTED in tag_codes(old)


@pytest.mark.parametrize("value", ["count", "everything", ""])
def test_an_unsupported_summary_on_read_is_400(client: TestClient, fhir: Any, value: str) -> None:
    fhir.put(rich_patient())

    response = client.get("/fhir/Patient/pat-1", params={"_summary": value})

    assert response.status_code == 400
    assert "_summary" in fhir.diagnostics(response)


def test_elements_keeps_the_named_elements_and_tags_subsetted(
    client: TestClient, fhir: Any
) -> None:
    fhir.put(rich_patient())

    subset = client.get("/fhir/Patient/pat-1", params={"_elements": "name,maritalStatus"}).json()

    assert set(subset) == {"resourceType", "id", "meta", "name", "maritalStatus"}
    assert SUBSETTED in tag_codes(subset)
    assert subset["meta"]["versionId"] == "1"


def test_elements_keeps_the_extension_twin_of_a_primitive(client: TestClient, fhir: Any) -> None:
    fhir.put(
        patient(
            id="pat-1",
            birthDate="1970-01-01",
            _birthDate={
                "extension": [
                    {
                        "url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                        "valueDateTime": "1970-01-01T08:30:00+01:00",
                    }
                ]
            },
            gender="female",
        )
    )

    subset = client.get("/fhir/Patient/pat-1", params={"_elements": "birthDate"}).json()

    assert subset["birthDate"] == "1970-01-01"
    assert "_birthDate" in subset
    assert "gender" not in subset


def test_elements_with_no_names_is_400(client: TestClient, fhir: Any) -> None:
    fhir.put(rich_patient())

    response = client.get("/fhir/Patient/pat-1", params={"_elements": " , "})

    assert response.status_code == 400
    assert "_elements" in fhir.expressions(response)


def test_a_subsetted_read_keeps_the_version_headers(client: TestClient, fhir: Any) -> None:
    fhir.put(rich_patient())

    response = client.get("/fhir/Patient/pat-1", params={"_elements": "name"})

    assert response.headers["ETag"] == 'W/"1"'
    assert response.headers["Last-Modified"]


def test_pretty_indents_the_same_content(client: TestClient, fhir: Any) -> None:
    fhir.put(rich_patient())

    compact = client.get("/fhir/Patient/pat-1")
    pretty = client.get("/fhir/Patient/pat-1", params={"_pretty": "true"})

    assert b"\n" not in compact.content
    assert b'\n  "resourceType": "Patient"' in pretty.content
    assert pretty.json() == compact.json()


def test_a_searchset_carries_the_stored_resource_and_indents_it_when_pretty(
    client: TestClient, fhir: Any
) -> None:
    fhir.put(rich_patient())
    read = client.get("/fhir/Patient/pat-1")

    compact = client.get("/fhir/Patient", params={"_id": "pat-1"})
    pretty = client.get("/fhir/Patient", params={"_id": "pat-1", "_pretty": "true"})

    assert read.content in compact.content
    assert b'\n        "resourceType": "Patient"' in pretty.content
    assert pretty.json()["entry"] == compact.json()["entry"]
    assert compact.json()["entry"][0]["resource"] == read.json()


def test_pretty_applies_to_write_responses_and_outcomes(client: TestClient) -> None:
    written = client.put(
        "/fhir/Patient/pat-1",
        params={"_pretty": "true"},
        json=patient(id="pat-1"),
        headers=FHIR_JSON,
    )
    error = client.get("/fhir/Patient/nobody", params={"_pretty": "true"})

    assert b"\n  " in written.content
    assert written.json()["id"] == "pat-1"
    assert b"\n  " in error.content
    assert error.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize(
    "value",
    ["json", "application/fhir+json", "application/json", "application/fhir+json; fhirVersion=4.0"],
)
def test_format_json_is_served(client: TestClient, fhir: Any, value: str) -> None:
    fhir.put(rich_patient())

    response = client.get("/fhir/Patient/pat-1", params={"_format": value})

    assert response.status_code == 200
    assert response.json()["id"] == "pat-1"


@pytest.mark.parametrize("value", ["xml", "application/fhir+xml", "text/xml", "turtle"])
def test_format_other_than_json_is_406_with_an_outcome(
    client: TestClient, fhir: Any, value: str
) -> None:
    fhir.put(rich_patient())

    response = client.get("/fhir/Patient/pat-1", params={"_format": value})

    assert response.status_code == 406
    assert "_format" in fhir.diagnostics(response)


@pytest.mark.parametrize("accept", ["application/fhir+xml", "application/xml", "text/html"])
def test_accept_without_json_is_406_with_an_outcome(
    client: TestClient, fhir: Any, accept: str
) -> None:
    fhir.put(rich_patient())

    response = client.get("/fhir/Patient/pat-1", headers={"Accept": accept})

    assert response.status_code == 406
    assert response.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize(
    "accept",
    [
        "application/fhir+json",
        "application/json",
        "*/*",
        "application/fhir+xml;q=1.0, application/fhir+json;q=0.9",
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    ],
)
def test_accept_that_allows_json_is_served(client: TestClient, fhir: Any, accept: str) -> None:
    fhir.put(rich_patient())

    response = client.get("/fhir/Patient/pat-1", headers={"Accept": accept})

    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] in (
        "application/fhir+json",
        "application/json",
    )
    assert response.json()["id"] == "pat-1"


def test_format_json_overrides_an_xml_accept(client: TestClient, fhir: Any) -> None:
    fhir.put(rich_patient())

    response = client.get(
        "/fhir/Patient/pat-1", params={"_format": "json"}, headers={"Accept": "application/xml"}
    )

    assert response.status_code == 200


def test_xml_asked_for_on_a_write_is_406_and_stores_nothing(client: TestClient, fhir: Any) -> None:
    response = client.post(
        "/fhir/Patient", json=patient(), headers={**FHIR_JSON, "Accept": "application/fhir+xml"}
    )

    assert response.status_code == 406
    assert fhir.stored_version_count() == 0


@pytest.mark.parametrize("content_type", ["application/fhir+xml", "application/xml", "text/xml"])
def test_xml_sent_is_415_and_stores_nothing(
    client: TestClient, fhir: Any, content_type: str
) -> None:
    response = client.post(
        "/fhir/Patient",
        content=b'<Patient xmlns="http://hl7.org/fhir"><active value="true"/></Patient>',
        headers={"Content-Type": content_type},
    )

    assert response.status_code == 415
    assert "JSON" in fhir.diagnostics(response)
    assert fhir.stored_version_count() == 0


def test_plain_json_content_type_is_accepted(client: TestClient) -> None:
    response = client.post(
        "/fhir/Patient",
        content=orjson.dumps(patient()),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )

    assert response.status_code == 201


def test_written_timestamps_are_now_in_utc(fhir: Any) -> None:
    before = datetime.now(UTC)
    created = fhir.create(patient())
    after = datetime.now(UTC)

    last_updated = datetime.fromisoformat(created["meta"]["lastUpdated"].replace("Z", "+00:00"))
    assert created["meta"]["lastUpdated"].endswith("Z")
    assert before <= last_updated <= after


def test_conditional_update_with_no_match_and_the_id_of_another_resource_is_409(
    client: TestClient, fhir: Any
) -> None:
    # The body names an existing resource that the condition did not match: updating it
    # would overwrite the wrong record. https://hl7.org/fhir/R5/http.html#cond-update
    other = fhir.put(with_mrn("999", id="pat-1", gender="male")).json()

    response = client.put(
        "/fhir/Patient",
        params={"identifier": f"{MRN}|123"},
        json=with_mrn("123", id="pat-1", gender="female"),
        headers=FHIR_JSON,
    )

    assert response.status_code == 409
    assert "Patient.id" in fhir.expressions(response)
    assert fhir.read("Patient", "pat-1") == other
