"""Any request a FHIR client can make around a stored resource is answered with a
resource, a Bundle or a 4xx OperationOutcome; never a 500.

What is drawn here is what the other property tests leave alone: the HTTP headers the
server reads (If-Match, If-None-Match, If-Modified-Since, If-None-Exist, Prefer,
Accept), the parameters of history and `$everything`, `_format` and `_pretty`, and JSON
Patch documents. https://hl7.org/fhir/R4/http.html.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ODD = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            "*",
            'W/"1"',
            'W/"99999999999"',
            '"1"',
            "W/",
            'W/"x"',
            "1",
            "-1",
            "0",
            "99999999999999999999",
            "2024-01-01",
            "2024-02-30",
            "2024-01-01T00:00:00Z",
            "Mon, 01 Jan 2024 00:00:00 GMT",
            "Mon, 99 Foo 2024 99:99:99 GMT",
            "return=minimal",
            "return=representation",
            "return=OperationOutcome",
            "handling=lenient",
            "handling=strict",
            "respond-async",
            "application/fhir+json",
            "application/fhir+xml",
            "application/json; fhirVersion=3.0",
            "text/html",
            "*/*;q=0",
            "json",
            "xml",
            "true",
            "identifier=urn:x|1",
            "identifier=",
            "bogus=1",
            "Observation,Condition",
            "Spaceship",
            "\x01",
            "a" * 3000,
            "æøå",
        ]
    ),
    st.text(max_size=20),
)
HEADERS = ["If-Match", "If-None-Match", "If-Modified-Since", "If-None-Exist", "Prefer", "Accept"]
PARAMETERS = ["_since", "_at", "_count", "_cursor", "_type", "_format", "_pretty", "_summary"]
PATCH_OPS = st.fixed_dictionaries(
    {
        "op": st.sampled_from(["add", "remove", "replace", "move", "copy", "test", "bogus", ""]),
        "path": st.sampled_from(
            ["/active", "/name/0/family", "/name/-", "/id", "/resourceType", "/meta", "", "/", "x"]
        ),
    },
    optional={
        "value": st.one_of(ODD, st.integers(), st.booleans(), st.none(), st.just({})),
        "from": st.sampled_from(["/name", "/active", "/nothing", "", "x"]),
    },
)
REQUESTS = st.sampled_from(
    [
        ("GET", "/fhir/Patient/{id}"),
        ("GET", "/fhir/Patient/{id}/_history"),
        ("GET", "/fhir/Patient/{id}/_history/1"),
        ("GET", "/fhir/Patient/_history"),
        ("GET", "/fhir/_history"),
        ("GET", "/fhir/Patient/{id}/$everything"),
        ("PUT", "/fhir/Patient/{id}"),
        ("POST", "/fhir/Patient"),
        ("PATCH", "/fhir/Patient/{id}"),
        ("DELETE", "/fhir/Patient/{id}"),
        ("GET", "/fhir/metadata"),
    ]
)


@pytest.fixture
def patient_id(client: TestClient) -> str:
    created = client.post(
        "/fhir/Patient",
        json={"resourceType": "Patient", "active": True, "name": [{"family": "Hansen"}]},
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    request=REQUESTS,
    headers=st.dictionaries(st.sampled_from(HEADERS), ODD, max_size=3),
    params=st.lists(st.tuples(st.sampled_from(PARAMETERS), ODD), max_size=3),
    patch=st.lists(PATCH_OPS, max_size=3),
)
def test_any_request_around_a_resource_is_answered_with_fhir(
    client: TestClient,
    patient_id: str,
    request: tuple[str, str],
    headers: dict[str, str],
    params: list[tuple[str, str]],
    patch: list[dict[str, Any]],
) -> None:
    method, template = request
    path = template.format(id=patient_id)
    query = "&".join(f"{name}={quote(value, safe='')}" for name, value in params)
    sendable = {}
    for name, value in headers.items():
        try:
            value.encode("ascii")
        except UnicodeEncodeError:
            continue  # not sendable as an HTTP header value by this client
        sendable[name] = value
    body: bytes | None = None
    if method == "PATCH":
        body = orjson.dumps(patch)
        sendable["Content-Type"] = "application/json-patch+json"
    elif method in ("PUT", "POST"):
        resource = {"resourceType": "Patient", "active": False}
        if method == "PUT":
            resource["id"] = patient_id
        body = orjson.dumps(resource)
        sendable["Content-Type"] = "application/fhir+json"
    answer = client.request(method, f"{path}?{query}", content=body, headers=sendable)
    assert answer.status_code < 500, (method, path, query, sendable, answer.text[:300])
    if answer.status_code >= 400 and answer.status_code != 406 and answer.content:
        assert answer.json()["resourceType"] == "OperationOutcome", answer.text[:300]
