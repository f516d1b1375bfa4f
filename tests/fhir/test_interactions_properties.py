"""Any resource a client can write is stored, or refused with a 4xx OperationOutcome that
leaves nothing written; never a 500.

Valid resources are changed at random in the places the server reads beyond validation
(references, codes, quantities, dates, identifiers, meta, extensions: what the search
index, the compartment, the access rules and the conditional matching take from a
resource) to values that are odd in every way a sending system's code makes them, and
created by POST, by PUT and inside a transaction, by a clinician's app and by a
hospital's backend client (a push).
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import bearer

_ids = itertools.count()

PATIENT = {
    "resourceType": "Patient",
    "identifier": [{"system": "urn:oid:1.2.208.176.1.2", "value": "0101801234"}],
    "name": [{"family": "Jensen", "given": ["Karen"]}],
    "birthDate": "1980-01-01",
    "generalPractitioner": [{"reference": "Organization/gp"}],
}
OBSERVATION = {
    "resourceType": "Observation",
    "status": "final",
    "category": [{"coding": [{"system": "http://x", "code": "laboratory"}]}],
    "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}], "text": "Hb"},
    "subject": {"reference": "Patient/p"},
    "effectiveDateTime": "2024-03-01T08:30:00Z",
    "valueQuantity": {"value": 13.2, "system": "http://unitsofmeasure.org", "code": "g/dL"},
    "performer": [{"reference": "Organization/lab"}],
    "identifier": [{"system": "urn:lab", "value": "S-1"}],
    "component": [{"code": {"text": "x"}, "valueQuantity": {"value": 1}}],
}
# Paths into the resources above (keys, and list positions as ints).
PATHS = {
    "Patient": [
        ("identifier", 0, "value"),
        ("identifier", 0, "system"),
        ("name", 0, "family"),
        ("birthDate",),
        ("generalPractitioner", 0, "reference"),
        ("managingOrganization",),
        ("link",),
        ("meta",),
        ("extension",),
    ],
    "Observation": [
        ("subject", "reference"),
        ("subject",),
        ("code", "coding", 0, "code"),
        ("code", "coding", 0, "system"),
        ("category", 0, "coding", 0, "code"),
        ("effectiveDateTime",),
        ("effectivePeriod",),
        ("valueQuantity", "value"),
        ("valueQuantity", "code"),
        ("performer", 0, "reference"),
        ("identifier", 0, "value"),
        ("component", 0, "valueQuantity", "value"),
        ("hasMember",),
        ("meta",),
        ("contained",),
    ],
}
ODD_STRINGS = [
    "",
    " ",
    "Patient/",
    "Patient/p/_history/x",
    "Patient/a b",
    "/Patient/p",
    "#",
    "#missing",
    "urn:uuid:not-in-the-bundle",
    "urn:uuid:00000000-0000-0000-0000-000000000000",
    "http://testserver/fhir/Patient/p",
    "http://elsewhere.example/fhir/Patient/p",
    "Patient?identifier=urn:oid:1.2.208.176.1.2|0101801234",
    "Patient?identifier=",
    "Patient?bogus=1",
    "Spaceship/1",
    "a" * 2000,
    "æøå 🙂",
    "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00+14:00",
    "2024-02-30",
    "2024",
    "2024-03-01T08:30:00",
    "\u0000",
    "\u0001",
]
ODD_VALUES = st.one_of(
    st.sampled_from(ODD_STRINGS),
    st.sampled_from([0, -1, 1e308, -1e308, 2**31, 2**53, 1e-320, True, None]),
    st.sampled_from(
        [
            [],
            {},
            [None],
            [{}],
            {"reference": "Patient/p"},
            {"reference": "Organization?identifier=urn:x|1"},
            [{"reference": "Observation/o", "display": "x"}],
            {"start": "2024-02-01", "end": "2024-01-01"},
            {"start": "9999-12-31T23:59:59-14:00"},
            [{"url": "http://x", "valueString": "\u0000"}],
            [{"url": "", "valueReference": {"reference": "Patient/"}}],
            {"tag": [{"system": "http://x", "code": "a" * 600}], "profile": ["x" * 2000]},
            {"versionId": "x", "lastUpdated": "9999-12-31T23:59:59-14:00", "source": "#"},
            [{"resourceType": "Patient", "id": "c1"}],
            [{"resourceType": "Observation"}],
            [{"resourceType": "Spaceship", "id": "c1"}],
            [{"resourceType": "HumanName", "family": "x"}],
            [{"resourceType": 7}],
            [{"id": "c1"}],
            [{"other": {"reference": "Patient/p"}, "type": "seealso"}],
        ]
    ),
    st.text(max_size=20),
)
mutations = st.lists(st.tuples(st.integers(0, 100), ODD_VALUES), min_size=1, max_size=3)


def _set(resource: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    node: Any = resource
    for step in path[:-1]:
        if isinstance(step, int):
            if not isinstance(node, list) or not node:
                return
            node = node[0]
        else:
            if not isinstance(node, dict):
                return
            node = node.setdefault(step, {})
    if isinstance(node, dict):
        node[path[-1]] = value
    elif isinstance(node, list) and node:
        node[0] = value


def _mutated(base: dict[str, Any], drawn: list[tuple[int, Any]]) -> dict[str, Any]:
    resource = copy.deepcopy(base)
    paths = PATHS[resource["resourceType"]]
    for index, value in drawn:
        _set(resource, paths[index % len(paths)], copy.deepcopy(value))
    return resource


def _answered(response: Any, body: Any) -> None:
    assert response.status_code < 500, (body, response.status_code, response.text[:500])
    if response.status_code >= 400:
        outcome = response.json()
        assert outcome["resourceType"] == "OperationOutcome", body
        assert all(issue.get("diagnostics") for issue in outcome["issue"]), body


@pytest.fixture
def headers(client: TestClient, issue_token: Callable[..., str]) -> dict[str, dict[str, str]]:
    """A clinician's app (the `client` fixture's token) and a hospital's backend client,
    whose writes are pushes: matched to the citizen by national ID, merged, rewritten and
    recorded with a Provenance (health/ingest/)."""
    source = issue_token(scope="system/*.cruds", actor_kind="client")
    return {"clinician": dict(client.headers), "source": bearer(source)}


@pytest.mark.parametrize("caller", ["clinician", "source"])
@pytest.mark.parametrize("base", [PATIENT, OBSERVATION], ids=["Patient", "Observation"])
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(drawn=mutations, how=st.sampled_from(["POST", "PUT", "transaction"]))
def test_any_resource_is_stored_or_refused_with_an_outcome(
    client: TestClient,
    headers: dict[str, dict[str, str]],
    caller: str,
    base: dict[str, Any],
    drawn: list[tuple[int, Any]],
    how: str,
) -> None:
    client.headers.clear()
    client.headers.update(headers[caller])
    resource = _mutated(base, drawn)
    resource_type = resource["resourceType"]
    if how == "POST":
        response = client.post(f"/fhir/{resource_type}", json=resource)
    elif how == "PUT":
        resource["id"] = f"r{next(_ids)}"
        response = client.put(f"/fhir/{resource_type}/{resource['id']}", json=resource)
    else:
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "fullUrl": "urn:uuid:00000000-0000-0000-0000-000000000000",
                    "resource": resource,
                    "request": {"method": "POST", "url": resource_type},
                }
            ],
        }
        response = client.post("/fhir", json=bundle)
    _answered(response, resource)
