"""Bad input: every mistake gets a 4xx OperationOutcome saying what and where.

Never a 500 and never a partial write: each test checks that nothing was stored.
https://hl7.org/fhir/R4/http.html#2.21.0.17 (status codes) and
https://hl7.org/fhir/R4/operationoutcome.html
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import orjson
import pytest
from fastapi.testclient import TestClient

from health.app import create_app
from health.db.engine import Database
from health.settings import MAX_JSON_DEPTH, Settings
from tests.fhir.conftest import json_depth

FHIR_JSON = {"Content-Type": "application/fhir+json"}
SMALL_BODY_LIMIT = 2_000


def observation(**elements: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "body weight"},
        **elements,
    }


def assert_client_error(fhir: Any, response: Any, status: int | tuple[int, ...] = 400) -> None:
    """A 4xx with an OperationOutcome, and nothing stored."""
    expected = status if isinstance(status, tuple) else (status,)
    assert response.status_code in expected, response.text
    fhir.outcome(response)
    assert fhir.stored_version_count() == 0


@pytest.fixture
def small_client(
    settings: Settings, database: Database, auth_headers: dict[str, str]
) -> Iterator[TestClient]:
    """The app with a small body limit."""
    small = settings.model_copy(update={"max_body_bytes": SMALL_BODY_LIMIT})
    app = create_app(small, database=database, migrate=False)
    with TestClient(
        app, base_url="http://testserver", raise_server_exceptions=False, headers=auth_headers
    ) as client:
        yield client


# Bodies that are not a FHIR JSON object


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (b'{"resourceType": "Patient", "active": tru', "not valid JSON"),
        (b'{"resourceType": "Patient",}', "not valid JSON"),
        (b"", "empty"),
        (b"   \n", "empty"),
        (b'[{"resourceType": "Patient"}]', "JSON object"),
        (b'"Patient"', "JSON object"),
        (b"42", "JSON object"),
        (b"null", "JSON object"),
        (b'{"active": true}', "resourceType"),
        (b'{"resourceType": 7}', "resourceType"),
    ],
)
@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/fhir/Patient"), ("PUT", "/fhir/Patient/p1")]
)
def test_a_body_that_is_not_a_resource_is_400(
    client: TestClient, fhir: Any, body: bytes, said: str, method: str, path: str
) -> None:
    response = client.request(method, path, content=body, headers=FHIR_JSON)

    assert_client_error(fhir, response)
    assert said in fhir.diagnostics(response)


def test_bytes_that_are_not_utf8_are_400(client: TestClient, fhir: Any) -> None:
    latin1 = '{"resourceType": "Patient", "name": [{"family": "Jørgensen"}]}'.encode("latin-1")

    response = client.post("/fhir/Patient", content=latin1, headers=FHIR_JSON)

    assert_client_error(fhir, response)
    assert "UTF-8" in fhir.diagnostics(response)


def test_non_ascii_utf8_is_stored_as_sent(client: TestClient, fhir: Any) -> None:
    body = '{"resourceType": "Patient", "name": [{"family": "Jørgensen-Ærø"}]}'.encode()

    response = client.post("/fhir/Patient", content=body, headers=FHIR_JSON)

    assert response.status_code == 201
    assert fhir.read("Patient", response.json()["id"])["name"] == [{"family": "Jørgensen-Ærø"}]


def nested_extension(levels: int) -> dict[str, Any]:
    """An extension nested `levels` deep: two JSON levels (array, object) per step."""
    node: dict[str, Any] = {"url": "http://example.org/leaf", "valueString": "x"}
    for _ in range(levels):
        node = {"url": "http://example.org/branch", "extension": [node]}
    return node


def test_json_nested_deeper_than_the_limit_is_400(
    client: TestClient, fhir: Any, settings: Settings
) -> None:
    limit = settings.max_json_depth
    deep = {"resourceType": "Patient", "extension": [nested_extension(limit // 2)]}
    assert json_depth(deep) > limit

    response = client.post("/fhir/Patient", content=orjson.dumps(deep), headers=FHIR_JSON)

    assert_client_error(fhir, response)
    assert f"{limit} levels" in fhir.diagnostics(response)


def test_json_nested_to_the_highest_limit_allowed_is_stored_and_read_back(
    settings: Settings, database: Database, auth_headers: dict[str, str]
) -> None:
    """Every walk over a resource (the nesting check, the shape check, validation,
    references, extraction) recurses once per level, and orjson writes at most 255
    levels: at the highest limit a deployment may set, a resource nested to it is
    stored, pushed and read back."""
    deepest = settings.model_copy(update={"max_json_depth": MAX_JSON_DEPTH})
    app = create_app(deepest, database=database, migrate=False)
    levels = (MAX_JSON_DEPTH - 3) // 2
    resource = {"resourceType": "Patient", "extension": [nested_extension(levels)]}
    assert json_depth(resource) <= MAX_JSON_DEPTH
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {
                    "resourceType": "Patient",
                    "extension": [nested_extension(levels - 2)],
                },
                "request": {"method": "POST", "url": "Patient"},
            }
        ],
    }
    with TestClient(
        app, base_url="http://testserver", raise_server_exceptions=False, headers=auth_headers
    ) as client:
        created = client.post("/fhir/Patient", content=orjson.dumps(resource), headers=FHIR_JSON)
        pushed = client.post("/fhir", content=orjson.dumps(bundle), headers=FHIR_JSON)
        read = client.get(created.headers.get("location", "/fhir/Patient/none"))

    assert created.status_code == 201, created.text[:500]
    assert pushed.status_code == 200, pushed.text[:500]
    assert read.status_code == 200, read.text[:500]
    assert json_depth(read.json()) == json_depth(resource)


def test_json_nested_to_the_limit_is_accepted(
    client: TestClient, fhir: Any, settings: Settings
) -> None:
    limit = settings.max_json_depth
    levels = (limit - 3) // 2
    resource = {"resourceType": "Patient", "extension": [nested_extension(levels)]}
    assert json_depth(resource) <= limit

    response = client.post("/fhir/Patient", content=orjson.dumps(resource), headers=FHIR_JSON)

    assert response.status_code == 201, response.text


def test_hostile_nesting_far_beyond_the_limit_is_400_not_a_crash(
    client: TestClient, fhir: Any
) -> None:
    body = b'{"resourceType": "Patient", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"

    response = client.post("/fhir/Patient", content=body, headers=FHIR_JSON)

    assert_client_error(fhir, response)


# Size


def test_a_body_over_the_limit_is_413(small_client: TestClient, fhir: Any) -> None:
    big = {"resourceType": "Patient", "name": [{"family": "x" * SMALL_BODY_LIMIT}]}

    response = small_client.post("/fhir/Patient", content=orjson.dumps(big), headers=FHIR_JSON)

    assert_client_error(fhir, response, 413)
    assert str(SMALL_BODY_LIMIT) in fhir.diagnostics(response)


def test_a_streamed_body_over_the_limit_is_413(small_client: TestClient, fhir: Any) -> None:
    # No Content-Length: the limit must hold while the body arrives in chunks.
    def chunks() -> Iterator[bytes]:
        yield b'{"resourceType": "Patient", "name": [{"family": "'
        for _ in range(10):
            yield b"x" * (SMALL_BODY_LIMIT // 4)
        yield b'"}]}'

    response = small_client.post("/fhir/Patient", content=chunks(), headers=FHIR_JSON)

    assert_client_error(fhir, response, 413)


def test_a_bundle_over_the_limit_is_413(small_client: TestClient, fhir: Any) -> None:
    entries = [
        {"resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}}
        for _ in range(100)
    ]
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}

    response = small_client.post("/fhir", content=orjson.dumps(bundle), headers=FHIR_JSON)

    assert_client_error(fhir, response, 413)


def test_a_body_under_the_limit_is_accepted(small_client: TestClient) -> None:
    response = small_client.post(
        "/fhir/Patient", content=orjson.dumps({"resourceType": "Patient"}), headers=FHIR_JSON
    )

    assert response.status_code == 201


# Resource type and id against the URL


def test_a_resource_type_that_does_not_match_the_url_is_400(client: TestClient, fhir: Any) -> None:
    response = client.post("/fhir/Patient", json=observation(), headers=FHIR_JSON)

    assert_client_error(fhir, response)
    assert "Observation.resourceType" in fhir.expressions(response)
    assert "Patient" in fhir.diagnostics(response)


def test_a_resource_type_that_does_not_match_the_url_on_update_is_400(
    client: TestClient, fhir: Any
) -> None:
    response = client.put("/fhir/Patient/p1", json=observation(id="p1"), headers=FHIR_JSON)

    assert_client_error(fhir, response)
    assert "Observation.resourceType" in fhir.expressions(response)


def test_an_id_in_the_body_that_does_not_match_the_url_on_update_is_400(
    client: TestClient, fhir: Any
) -> None:
    response = client.put(
        "/fhir/Patient/p1", json={"resourceType": "Patient", "id": "p2"}, headers=FHIR_JSON
    )

    assert_client_error(fhir, response)
    assert "Patient.id" in fhir.expressions(response)
    assert "'p2'" in fhir.diagnostics(response) and "'p1'" in fhir.diagnostics(response)


def test_a_missing_id_in_the_body_on_update_is_400(client: TestClient, fhir: Any) -> None:
    response = client.put("/fhir/Patient/p1", json={"resourceType": "Patient"}, headers=FHIR_JSON)

    assert_client_error(fhir, response)
    assert "Patient.id" in fhir.expressions(response)


@pytest.mark.parametrize("bad_id", ["has_underscore", "x" * 65, "spaces%20inside", "a%2Fb"])
def test_an_invalid_id_in_the_url_on_update_is_400(
    client: TestClient, fhir: Any, bad_id: str
) -> None:
    response = client.put(
        f"/fhir/Patient/{bad_id}",
        json={"resourceType": "Patient", "id": unquote(bad_id)},
        headers=FHIR_JSON,
    )

    assert_client_error(fhir, response, (400, 404))


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/fhir/Spaceship/1"),
        ("GET", "/fhir/Spaceship"),
        ("GET", "/fhir/Spaceship/1/_history/1"),
        ("DELETE", "/fhir/Spaceship/1"),
        ("GET", "/fhir/patient/1"),
    ],
)
def test_an_unknown_resource_type_in_the_url_is_an_error(
    client: TestClient, fhir: Any, method: str, path: str
) -> None:
    response = client.request(method, path)

    assert_client_error(fhir, response, (400, 404))
    assert path.split("/")[2] in fhir.diagnostics(response)


def test_creating_an_unknown_resource_type_is_an_error(client: TestClient, fhir: Any) -> None:
    response = client.post("/fhir/Spaceship", json={"resourceType": "Spaceship"}, headers=FHIR_JSON)

    assert_client_error(fhir, response, (400, 404))
    assert "Spaceship" in fhir.diagnostics(response)


@pytest.mark.parametrize("resource_type", ["OperationOutcome", "Parameters", "MedicinalProduct"])
def test_creating_a_type_this_server_does_not_store_is_an_error_saying_why(
    client: TestClient, fhir: Any, resource_type: str
) -> None:
    response = client.post(
        f"/fhir/{resource_type}", json={"resourceType": resource_type}, headers=FHIR_JSON
    )

    assert_client_error(fhir, response, (400, 404))
    assert "not served" in fhir.diagnostics(response)


# Invalid content, located with FHIRPath


@pytest.mark.parametrize(
    ("resource", "location", "code"),
    [
        (observation(status=5), "Observation.status", "value"),
        (observation(status=["final"]), "Observation.status", "value"),
        (observation(effectiveDateTime="last tuesday"), "Observation.effectiveDateTime", "value"),
        (observation(valueQuantity={"value": "heavy"}), "Observation.valueQuantity.value", "value"),
        (observation(code={"coding": {"code": "x"}}), "Observation.code.coding", "value"),
        (observation(weight=70), "Observation.weight", "structure"),
        (observation(code={"text": "x", "colour": "red"}), "Observation.code.colour", "structure"),
        (
            observation(note=[{"text": "ok"}, {"author": "me"}]),
            "Observation.note[1].author",
            "structure",
        ),
        ({"resourceType": "Observation", "code": {"text": "x"}}, "Observation.status", "required"),
        ({"resourceType": "Observation", "status": "final"}, "Observation.code", "required"),
        (
            {"resourceType": "Patient", "name": [{"given": ["Ann", 7]}]},
            "Patient.name[0].given[1]",
            "value",
        ),
        (
            {"resourceType": "Patient", "_birthDate": {"extension": [{"url": 5}]}},
            "Patient._birthDate.extension[0].url",
            "value",
        ),
        ({"resourceType": "Patient", "birthDate": "1970-13-45"}, "Patient.birthDate", "value"),
        ({"resourceType": "Patient", "gender": None}, "Patient.gender", "structure"),
        ({"resourceType": "Patient", "name": []}, "Patient.name", "structure"),
        ({"resourceType": "Patient", "name": [{}]}, "Patient.name[0]", "structure"),
        (
            {"resourceType": "Patient", "contained": [{"resourceType": "Bogus", "id": "a"}]},
            "Patient.contained[0].resourceType",
            "structure",
        ),
        (
            {"resourceType": "Patient", "contained": [{"id": "a"}]},
            "Patient.contained[0]",
            "structure",
        ),
        (
            {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {}}]},
            "Bundle.entry[0].resource",
            "structure",
        ),
        (
            {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [{"resource": {"resourceType": "Bogus"}}],
            },
            "Bundle.entry[0].resource.resourceType",
            "structure",
        ),
        pytest.param(
            {"resourceType": "Patient", "active": "yes"},
            "Patient.active",
            "value",
        ),
        pytest.param(
            observation(valueInteger="5"),
            "Observation.valueInteger",
            "value",
        ),
        pytest.param(
            observation(valueQuantity={"value": "70.5"}),
            "Observation.valueQuantity.value",
            "value",
        ),
    ],
)
def test_invalid_content_is_400_naming_the_element(
    client: TestClient, fhir: Any, resource: dict[str, Any], location: str, code: str
) -> None:
    response = client.post(f"/fhir/{resource['resourceType']}", json=resource, headers=FHIR_JSON)

    assert_client_error(fhir, response)
    issues = fhir.outcome(response)["issue"]
    located = [issue for issue in issues if location in issue.get("expression", [])]
    assert located, issues
    assert located[0]["code"] == code


def test_every_problem_of_a_resource_is_reported_at_once(client: TestClient, fhir: Any) -> None:
    response = client.post(
        "/fhir/Observation",
        json=observation(status=5, issued="not a time", wobble=True),
        headers=FHIR_JSON,
    )

    assert_client_error(fhir, response)
    expressions = fhir.expressions(response)
    assert {"Observation.status", "Observation.issued", "Observation.wobble"} <= set(expressions)


def test_a_code_outside_a_required_binding_is_400(client: TestClient, fhir: Any) -> None:
    response = client.post(
        "/fhir/Patient", json={"resourceType": "Patient", "gender": "robot"}, headers=FHIR_JSON
    )

    assert_client_error(fhir, response)
    assert "Patient.gender" in fhir.expressions(response)


def test_invalid_content_on_update_is_400_and_keeps_the_old_version(
    client: TestClient, fhir: Any
) -> None:
    fhir.put({"resourceType": "Patient", "id": "p1", "gender": "male"})

    response = client.put(
        "/fhir/Patient/p1",
        json={"resourceType": "Patient", "id": "p1", "gender": 1},
        headers=FHIR_JSON,
    )

    assert response.status_code == 400
    assert "Patient.gender" in fhir.expressions(response)
    assert fhir.read("Patient", "p1")["meta"]["versionId"] == "1"
    assert fhir.stored_version_count() == 1


# Inside Bundles


def transaction(*entries: dict[str, Any], kind: str = "transaction") -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def post_entry(resource: dict[str, Any], full_url: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"]},
    }
    if full_url:
        entry["fullUrl"] = full_url
    return entry


def test_invalid_content_in_a_transaction_is_located_in_the_bundle(
    client: TestClient, fhir: Any
) -> None:
    bad = observation()
    bad["status"] = 3
    response = client.post(
        "/fhir",
        json=transaction(
            post_entry({"resourceType": "Patient"}),
            post_entry({"resourceType": "Patient"}),
            post_entry(observation()),
            post_entry(bad),
        ),
        headers=FHIR_JSON,
    )

    assert_client_error(fhir, response)
    assert "Bundle.entry[3].resource.status" in fhir.expressions(response)


def test_a_missing_element_in_a_transaction_is_located_in_the_bundle(
    client: TestClient, fhir: Any
) -> None:
    bad = observation()
    del bad["code"]
    response = client.post(
        "/fhir",
        json=transaction(post_entry({"resourceType": "Patient"}), post_entry(bad)),
        headers=FHIR_JSON,
    )

    assert_client_error(fhir, response)
    assert "Bundle.entry[1].resource.code" in fhir.expressions(response)


def test_a_reference_to_a_urn_uuid_not_in_the_bundle_is_400(client: TestClient, fhir: Any) -> None:
    missing = "urn:uuid:00000000-0000-4000-8000-000000000000"
    response = client.post(
        "/fhir",
        json=transaction(
            post_entry(
                {"resourceType": "Patient"}, "urn:uuid:11111111-1111-4111-8111-111111111111"
            ),
            post_entry(observation(subject={"reference": missing})),
        ),
        headers=FHIR_JSON,
    )

    assert_client_error(fhir, response)
    assert "Bundle.entry[1].resource.subject.reference" in fhir.expressions(response)
    assert missing in fhir.diagnostics(response)


@pytest.mark.parametrize(
    ("entry", "location"),
    [
        ("not an object", "Bundle.entry[1]"),
        ({"resource": {"resourceType": "Patient"}}, "Bundle.entry[1].request"),
        (
            {
                "resource": {"resourceType": "Patient"},
                "request": {"method": "FETCH", "url": "Patient"},
            },
            "Bundle.entry[1].request.method",
        ),
        (
            {"resource": {"resourceType": "Patient"}, "request": {"method": "POST"}},
            "Bundle.entry[1].request.url",
        ),
        ({"request": {"method": "POST", "url": "Patient"}}, "Bundle.entry[1].resource"),
        (
            {
                "resource": {"resourceType": "Patient"},
                "request": {"method": "POST", "url": "Patient/p1"},
            },
            "Bundle.entry[1].request.url",
        ),
        (
            {
                "resource": {"resourceType": "Patient"},
                "request": {"method": "PUT", "url": "Patient"},
            },
            "Bundle.entry[1].request.url",
        ),
        (
            {
                "resource": {"resourceType": "Observation"},
                "request": {"method": "POST", "url": "Patient"},
            },
            "Bundle.entry[1].resource.resourceType",
        ),
        (
            {
                "resource": {"resourceType": "Patient", "id": "p2"},
                "request": {"method": "PUT", "url": "Patient/p1"},
            },
            "Bundle.entry[1].resource.id",
        ),
        (
            {
                "resource": {"resourceType": "Patient"},
                "request": {"method": "PATCH", "url": "Patient/p1"},
            },
            "Bundle.entry[1].resource",
        ),
        (
            {
                "resource": {"resourceType": "Spaceship"},
                "request": {"method": "POST", "url": "Spaceship"},
            },
            "Bundle.entry[1]",
        ),
    ],
)
def test_a_malformed_transaction_entry_is_400_naming_the_entry(
    client: TestClient, fhir: Any, entry: Any, location: str
) -> None:
    response = client.post(
        "/fhir",
        json=transaction(post_entry({"resourceType": "Patient"}), entry),
        headers=FHIR_JSON,
    )

    assert_client_error(fhir, response, (400, 404))
    expressions = fhir.expressions(response)
    assert any(e.startswith(location) for e in expressions), expressions


@pytest.mark.parametrize(
    "kind", ["collection", "document", "searchset", "history", "message", None]
)
def test_a_bundle_that_is_not_a_batch_or_transaction_is_400(
    client: TestClient, fhir: Any, kind: str | None
) -> None:
    bundle = transaction(post_entry({"resourceType": "Patient"}), kind=kind)  # type: ignore[arg-type]
    if kind is None:
        del bundle["type"]

    response = client.post("/fhir", json=bundle, headers=FHIR_JSON)

    assert_client_error(fhir, response)
    assert "Bundle.type" in fhir.expressions(response)


@pytest.mark.parametrize(
    "body",
    [
        {"resourceType": "Patient"},
        {"resourceType": "Bundle", "type": "transaction", "entry": {"request": {}}},
        [{"resourceType": "Bundle", "type": "transaction"}],
    ],
)
def test_something_other_than_a_bundle_posted_to_the_base_is_400(
    client: TestClient, fhir: Any, body: Any
) -> None:
    response = client.post("/fhir", json=body, headers=FHIR_JSON)

    assert_client_error(fhir, response)


def test_a_bundle_with_too_many_entries_is_refused(
    settings: Settings, database: Database, fhir: Any, auth_headers: dict[str, str]
) -> None:
    limited = settings.model_copy(update={"max_bundle_entries": 3})
    app = create_app(limited, database=database, migrate=False)
    entries = [post_entry({"resourceType": "Patient"}) for _ in range(4)]
    with TestClient(
        app, base_url="http://testserver", raise_server_exceptions=False, headers=auth_headers
    ) as small:
        response = small.post("/fhir", json=transaction(*entries), headers=FHIR_JSON)

    assert_client_error(fhir, response)
    assert "Bundle.entry" in fhir.expressions(response)


# Headers and parameters


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "image/png"]
)
def test_a_body_that_is_not_json_is_415(client: TestClient, fhir: Any, content_type: str) -> None:
    response = client.post(
        "/fhir/Patient",
        content=orjson.dumps({"resourceType": "Patient"}),
        headers={"Content-Type": content_type},
    )

    assert_client_error(fhir, response, 415)


def test_json_patch_content_type_is_only_for_patch(client: TestClient, fhir: Any) -> None:
    response = client.post(
        "/fhir/Patient",
        content=orjson.dumps({"resourceType": "Patient"}),
        headers={"Content-Type": "application/json-patch+json"},
    )

    assert_client_error(fhir, response, 415)


@pytest.mark.parametrize(
    "query",
    [
        {"nickname": "Jensen"},
        {"identifier:below": "x"},
        {"identifier": ""},
        {"_count": "lots"},
        {"_offset": "-2"},
        {"_has:Observation:subject:nickname": "x"},
        {"birthdate": "yesterday"},
        {"_sort": "nickname"},
        {"_cursor": "not-a-cursor"},
    ],
)
def test_an_unsupported_or_malformed_search_is_400(
    client: TestClient, fhir: Any, query: dict[str, str]
) -> None:
    response = client.get("/fhir/Patient", params=query)

    assert_client_error(fhir, response)
    name = next(iter(query)).split(":")[0]
    assert name in fhir.diagnostics(response) or name in " ".join(fhir.expressions(response))


def test_an_unsupported_search_criterion_on_conditional_delete_deletes_nothing(
    client: TestClient, fhir: Any
) -> None:
    kept = fhir.create({"resourceType": "Patient", "name": [{"family": "Jensen"}]})

    response = client.delete("/fhir/Patient", params={"nickname": "Jensen"})

    assert response.status_code == 400
    assert "nickname" in fhir.diagnostics(response)
    assert client.get(f"/fhir/Patient/{kept['id']}").status_code == 200


def test_an_unknown_path_is_404_with_an_outcome(client: TestClient, fhir: Any) -> None:
    response = client.get("/fhir/Patient/p1/_history/1/extra")

    assert_client_error(fhir, response, 404)


def test_an_unsupported_method_is_405_with_an_outcome(client: TestClient, fhir: Any) -> None:
    response = client.patch(
        "/fhir/Patient", content=b"[]", headers={"Content-Type": "application/json-patch+json"}
    )

    assert_client_error(fhir, response, 405)


# U+0000 (NUL): no FHIR value holds it, XML cannot write it, and PostgreSQL's text
# refuses it outright. On PostgreSQL each of these was a 500.


def test_a_nul_in_a_resource_is_400_naming_the_element(client: TestClient, fhir: Any) -> None:
    response = client.post(
        "/fhir/Patient",
        json={"resourceType": "Patient", "name": [{"family": "Jen\u0000sen"}]},
        headers=FHIR_JSON,
    )

    assert_client_error(fhir, response)
    assert fhir.expressions(response) == ["Patient.name[0].family"]
    assert "U+0000" in fhir.diagnostics(response)


# https://hl7.org/fhir/R4/datatypes.html#string: no character below U+0020 but tab, line
# feed and carriage return. A vertical tab used to be stored as sent.
@pytest.mark.parametrize(("character", "named"), [("\u0000", "U+0000"), ("\u000b", "U+000B")])
def test_a_control_character_in_a_transaction_writes_nothing_and_names_the_entry(
    client: TestClient, fhir: Any, character: str, named: str
) -> None:
    response = client.post(
        "/fhir",
        json=transaction(
            post_entry({"resourceType": "Patient"}),
            post_entry(observation(valueString=f"8{character} mmol/L")),
        ),
        headers=FHIR_JSON,
    )

    assert_client_error(fhir, response)
    assert "Bundle.entry[1].resource.valueString" in fhir.expressions(response)
    assert named in fhir.diagnostics(response)
    assert client.get("/fhir/Patient").json().get("total") == 0


@pytest.mark.parametrize(
    "query",
    [
        {"name": "Jen\u0000sen"},
        {"_id": "\u0000"},
        {"identifier": "urn:oid:1.2.208.176.1.2|\u0000"},
        {"_has:Observation:patient:code": "\u0000"},
        {"na\u0000me": "Jensen"},
    ],
)
def test_a_nul_in_a_search_is_400_naming_the_parameter(
    client: TestClient, fhir: Any, query: dict[str, str]
) -> None:
    response = client.get("/fhir/Patient", params=query)

    assert_client_error(fhir, response)
    assert "U+0000" in fhir.diagnostics(response)
    assert next(iter(query)).split("\u0000")[0] in fhir.diagnostics(response)


def test_a_nul_in_a_condition_writes_nothing(client: TestClient, fhir: Any) -> None:
    created = client.post(
        "/fhir/Patient",
        json={"resourceType": "Patient"},
        headers={**FHIR_JSON, "If-None-Exist": "identifier=urn:x|%00"},
    )
    updated = client.put(
        "/fhir/Patient", params={"identifier": "urn:x|\u0000"}, json={"resourceType": "Patient"}
    )
    deleted = client.delete("/fhir/Patient", params={"identifier": "urn:x|\u0000"})

    for response in (created, updated, deleted):
        assert_client_error(fhir, response)
        assert "identifier" in fhir.diagnostics(response)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/fhir/Patient/%00"),
        ("GET", "/fhir/Patient/a%00b/_history"),
        ("GET", "/fhir/Patient/a%00b/_history/1"),
        ("DELETE", "/fhir/Patient/a%00b"),
        ("GET", "/fhir/Patient/a%00b/$everything"),
        ("GET", f"/fhir/Patient/{'a' * 65}"),
    ],
)
def test_an_id_no_resource_can_have_is_400_before_any_lookup(
    client: TestClient, fhir: Any, method: str, path: str
) -> None:
    response = client.request(method, path)

    assert_client_error(fhir, response)
    assert "not a valid FHIR id" in fhir.diagnostics(response)
    assert fhir.expressions(response) == ["id"]


def test_a_nul_in_a_form_of_the_authorization_server_is_400(
    anonymous_client: TestClient, database: Database
) -> None:
    """Outside the FHIR API nothing names it before the database does; the answer is still
    a 4xx in the endpoint's own format (health/fhir/http.py, `_data_error`). SQLite
    stores a NUL, so there the unknown client is refused as any other."""
    nul_refused = database.write_engine.dialect.name == "postgresql"
    for path, form in [
        ("/auth/token", {"grant_type": "refresh_token", "refresh_token": "a", "client_id": "\0"}),
        ("/auth/revoke", {"token": "a\u0000", "client_id": "a\u0000"}),
    ]:
        response = anonymous_client.post(path, data=form)

        assert response.status_code in ((400,) if nul_refused else (400, 401)), response.text
        assert response.json()["error"] in ("invalid_request", "invalid_client"), path
        if nul_refused:
            assert "U+0000" in response.json()["error_description"], path
    page = anonymous_client.get("/portal/callback", params={"code": "a\u0000", "state": "b"})
    assert page.status_code == 400, page.text


def _cursor(*payload: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(payload))).decode().rstrip("=")


@pytest.mark.parametrize(
    ("resource_type", "sort", "cursor"),
    [
        ("Patient", "family", _cursor("a", [123], "p1")),
        ("Patient", "family", _cursor("a", ["Jen\u0000sen"], "p1")),
        ("Patient", "family", _cursor("a", [["Jensen"]], "p1")),
        ("Patient", "family", _cursor("a", ["Jensen"], "p\u00001")),
        ("Patient", "family", _cursor("a", ["Jensen"], "not an id")),
        ("Patient", "family", _cursor("a", ["Jensen", "Bo"], "p1")),
        ("Patient", "birthdate", _cursor("a", ["2020-01-01T00:00:00"], "p1")),
        ("Patient", "birthdate", _cursor("a", [20200101], "p1")),
        ("Patient", "birthdate", _cursor("b", ["yesterday"], "p1")),
        ("Observation", "value-quantity", _cursor("a", ["5.4"], "o1")),
        ("Observation", "value-quantity", _cursor("a", [True], "o1")),
        ("Observation", "-_lastUpdated", _cursor("b", [{"at": 1}], "o1")),
        ("Observation", "_id", _cursor("a", [7], "o1")),
    ],
)
def test_a_cursor_altered_by_hand_is_400(
    client: TestClient, fhir: Any, resource_type: str, sort: str, cursor: str
) -> None:
    """A cursor is read back only with keys of the types its search's columns hold: one
    with another type, or a NUL, went to the database as it was (PostgreSQL then
    refused to compare text with a number: a 500)."""
    fhir.create({"resourceType": "Patient", "name": [{"family": "Jensen"}]})

    response = client.get(f"/fhir/{resource_type}", params={"_sort": sort, "_cursor": cursor})

    assert response.status_code == 400, response.text
    assert "_cursor" in fhir.diagnostics(response)


@pytest.mark.parametrize(
    "url",
    [
        "/fhir/Patient?_count=%C2%B2",
        "/fhir/Patient/_history?_count=%C2%B2",
        "/fhir/Patient/_history?_cursor=%C2%B2",
        "/fhir/Patient/_history?_cursor=99999999999999999999999",
        "/fhir/_history?_cursor=%D9%A3",
        "/fhir/AuditEvent?_count=%C2%B2",
        "/fhir/AuditEvent?_cursor=%C2%B2",
    ],
)
def test_a_number_that_is_not_ascii_digits_or_too_long_to_hold_is_400(
    client: TestClient, fhir: Any, url: str
) -> None:
    """`str.isdigit` is true of "²" (which int() refuses) and of "٣" (which it reads as
    3); a cursor past 64 bits does not fit the database's column."""
    response = client.get(url)

    assert_client_error(fhir, response)
    assert url.split("?")[1].split("=")[0] in fhir.diagnostics(response)


@pytest.mark.parametrize("count", ["9" * 5000, "0" * 5000 + "1"])
def test_a_count_of_any_length_is_read(client: TestClient, count: str) -> None:
    """Python's int() refuses more than 4,300 digits; a _count that long is just large
    (capped at the maximum page size) or, with zeros in front, small."""
    response = client.get("/fhir/Patient", params={"_count": count})

    assert response.status_code == 200, response.text


@pytest.mark.parametrize("version", ["%C2%B2", "99999999999999999999999", "2147483648"])
def test_a_version_id_that_no_version_can_have_is_404(
    client: TestClient, fhir: Any, version: str
) -> None:
    patient = fhir.create({"resourceType": "Patient"})

    response = client.get(f"/fhir/Patient/{patient['id']}/_history/{version}")

    assert response.status_code == 404, response.text
    assert fhir.outcome(response)
