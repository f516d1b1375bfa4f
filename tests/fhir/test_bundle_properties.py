"""Any batch or transaction Bundle is answered with a response Bundle or a 4xx
OperationOutcome, never a 500, from a clinician's app, a hospital's push and a citizen's
own app; and a transaction that is refused leaves nothing written.

The Bundles are drawn from entries whose envelope is odd in the ways a sending system's
bugs make it: methods, URLs (search URLs, ids, versions, other bases), conditional
headers, fullUrls and the references between entries, missing or mismatched resources.
https://hl7.org/fhir/R4/http.html#transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from health.db.engine import Database
from tests.conftest import bearer

SSN = "http://hl7.org/fhir/sid/us-ssn"

ODD = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            "Patient",
            "Patient/",
            "Patient/p1",
            "Patient/p1/_history/1",
            "Patient?identifier=http://hl7.org/fhir/sid/us-ssn|999-00-0001",
            "Patient?identifier=",
            "Patient?bogus=1",
            "Observation?subject=urn:uuid:11111111-1111-1111-1111-111111111111",
            "Patient/$everything",
            "metadata",
            "_history",
            "Spaceship/1",
            "http://testserver/fhir/Patient/p1",
            "http://elsewhere.example/fhir/Patient/p1",
            "urn:uuid:11111111-1111-1111-1111-111111111111",
            "urn:uuid:22222222-2222-2222-2222-222222222222",
            "urn:uuid:not-a-uuid",
            'W/"1"',
            "*",
            "\x01",
            "a" * 2000,
        ]
    ),
    st.text(max_size=12),
)
METHODS = st.sampled_from(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "get", "", "BOGUS"])
RESOURCES = st.sampled_from(
    [
        None,
        {"resourceType": "Patient", "identifier": [{"system": SSN, "value": "999-00-0001"}]},
        {
            "resourceType": "Patient",
            "id": "p1",
            "identifier": [{"system": SSN, "value": "999-00-0001"}],
        },
        {"resourceType": "Patient", "identifier": [{"system": SSN, "value": "999-00-0002"}]},
        {"resourceType": "Patient"},
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "weight"},
            "subject": {"reference": "urn:uuid:11111111-1111-1111-1111-111111111111"},
        },
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "weight"},
            "subject": {
                "reference": "Patient?identifier=http://hl7.org/fhir/sid/us-ssn|999-00-0001"
            },
        },
        {"resourceType": "Organization", "identifier": [{"system": "urn:x", "value": "1"}]},
        {"resourceType": "Bundle", "type": "collection"},
        {"resourceType": "Spaceship"},
        {},
        "not an object",
    ]
)
REQUEST_MEMBERS = st.fixed_dictionaries(
    {"method": METHODS, "url": ODD},
    optional={"ifMatch": ODD, "ifNoneExist": ODD, "ifNoneMatch": ODD, "ifModifiedSince": ODD},
)
ENTRIES = st.fixed_dictionaries(
    {},
    optional={"fullUrl": ODD, "resource": RESOURCES, "request": REQUEST_MEMBERS},
)
BUNDLES = st.fixed_dictionaries(
    {
        "resourceType": st.just("Bundle"),
        "type": st.sampled_from(["transaction", "batch", "transaction", "collection", ""]),
        "entry": st.lists(ENTRIES, max_size=4),
    }
)
PROPERTIES = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def callers(client: TestClient, issue_token: Callable[..., str]) -> dict[str, dict[str, str]]:
    source = issue_token(scope="system/*.cruds", actor_kind="client")
    own = client.post(
        "/fhir/Patient",
        json={"resourceType": "Patient", "identifier": [{"system": SSN, "value": "999-00-0009"}]},
    )
    assert own.status_code == 201, own.text
    citizen = issue_token(
        scope="patient/*.cruds",
        actor_kind="citizen",
        patient_id=own.json()["id"],
        fhir_user=f"Patient/{own.json()['id']}",
    )
    return {"clinician": dict(client.headers), "source": bearer(source), "citizen": bearer(citizen)}


def _stored_count(database: Database) -> int:
    """Every version the database holds, whoever may see it (a push's too)."""
    with database.session(write=False) as session:
        return int(session.execute(text("SELECT count(*) FROM resource_version")).scalar_one())


@pytest.mark.parametrize("caller", ["clinician", "source", "citizen"])
@PROPERTIES
@given(bundle=BUNDLES)
def test_any_bundle_is_answered_and_a_refused_transaction_writes_nothing(
    client: TestClient,
    database: Database,
    callers: dict[str, dict[str, str]],
    caller: str,
    bundle: dict[str, Any],
) -> None:
    before = _stored_count(database)
    answer = client.post(
        "/fhir",
        json=bundle,
        headers={**callers[caller], "Content-Type": "application/fhir+json"},
    )
    assert answer.status_code < 500, answer.text[:500]
    body = answer.json()
    if answer.status_code >= 400:
        assert body["resourceType"] == "OperationOutcome", answer.text[:300]
        assert _stored_count(database) == before, "a refused Bundle wrote something"
    else:
        assert body["resourceType"] == "Bundle", answer.text[:300]
        assert len(body.get("entry", [])) == len(bundle["entry"])
