"""Any search a client can send is answered: a searchset Bundle, or a 4xx OperationOutcome
that says what is wrong; never a 500 (https://hl7.org/fhir/R4/search.html).

Searches are drawn at random from the parameters and modifiers of the types served,
prefixes, chains, `_has`, the result parameters and values that are odd in every way a
client's code or a user's typing makes them (empty, huge, out of range, percent-encoded
bytes that are not UTF-8, any text), sent by GET and by POST `_search`, as a clinician's
app, as a hospital's backend client (whose searches on the citizen's Patient are held
to rules of their own: health/access/source_search.py) and as the citizen's own app.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import bearer


class Encoded(str):
    """A value drawn as percent-encoded bytes: sent as drawn."""


TYPES = ["Patient", "Observation", "Encounter", "Condition", "Organization", "Bogus"]
NAMES = [
    "_id",
    "_lastUpdated",
    "_tag",
    "_profile",
    "_security",
    "_source",
    "_count",
    "_sort",
    "_total",
    "_summary",
    "_elements",
    "_include",
    "_revinclude",
    "_cursor",
    "_has:Observation:patient:code",
    "_has:Observation:subject",
    "_has",
    "identifier",
    "name",
    "family",
    "birthdate",
    "gender",
    "general-practitioner",
    "link",
    "subject",
    "patient",
    "subject:Patient.identifier",
    "subject.name",
    "code",
    "category",
    "status",
    "date",
    "value-quantity",
    "component-code-value-quantity",
    "combo-code",
    "onset-date",
    "clinical-status",
    "bogus",
    "",
]
MODIFIERS = [
    "",
    "",
    ":missing",
    ":exact",
    ":contains",
    ":not",
    ":text",
    ":of-type",
    ":Patient",
    ":Organization",
    ":iterate",
    ":above",
    ":identifier",
    ":bogus",
    ":",
]
ODD_VALUES = [
    "",
    "|",
    "||",
    ",",
    "$",
    "a$b",
    "-",
    "*",
    "Patient:*",
    "*:*",
    "Patient:general-practitioner",
    "Observation:subject:Patient",
    "Observation:patient",
    "Observation:bogus",
    "true",
    "false",
    "0",
    "-1",
    "99999999999999999999999999",
    "1e999",
    "NaN",
    "inf",
    "5.4|http://unitsofmeasure.org|mg",
    "gt5.4||mg",
    "Patient/x",
    "Patient/",
    "/x",
    "http://testserver/fhir/Patient/x",
    "http://elsewhere.example/fhir/Patient/x",
    "urn:oid:1.2.208.176.1.2|0101801234",
    "http://loinc.org|",
    "|29463-7",
    "name,-date,_id",
    "-",
    "count",
    "accurate",
    "estimate",
    "id,name",
    "2020",
    "2020-02",
    "2020-02-30",
    "2020-13-01",
    "2020-01-01T24:00:00Z",
    "2020-01-01T10:00:00+99:00",
    "2020-01-01T10:00",
    "99999-01-01",
    "9999-12-31",
    "9999-12-31T23:59:59Z",
    "0001",
    "ge2020-01-01",
    "ap2020",
    "eb",
    "sa2020-01-01T10:00:00.123456789Z",
    "%00",
    "\x00",
    "æøå ÆØÅ",
    "ß" * 300,
    "🙂",
    "'; DROP TABLE resource; --",
    "²",
    "٣",
    "9" * 5000,
    "99999999999999999999999",
    "a" * 5000,
]
PREFIXES = ["", "eq", "ne", "lt", "gt", "le", "ge", "sa", "eb", "ap", "xx"]

# Cursors altered by hand: this server's form (base64 of [direction, keys, id]) around
# keys of any JSON type.
json_keys = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(["2020-01-01T00:00:00+00:00", "2020-01-01T00:00:00", "2020-01-01"]),
    st.lists(st.integers(-10, 10), max_size=2),
)
cursors = st.tuples(
    st.sampled_from(["a", "b", "c", 1]),
    st.lists(json_keys, max_size=3),
    st.one_of(st.text(max_size=6), st.integers(-10, 10), st.sampled_from(["p1", "o1"])),
).map(lambda payload: base64.urlsafe_b64encode(orjson.dumps(list(payload))).decode())
values = st.one_of(
    cursors,
    st.sampled_from(ODD_VALUES),
    st.tuples(st.sampled_from(PREFIXES), st.sampled_from(ODD_VALUES)).map("".join),
    st.text(max_size=30),
    st.lists(st.sampled_from(ODD_VALUES), min_size=2, max_size=3).map(",".join),
)
names = st.tuples(st.sampled_from(NAMES), st.sampled_from(MODIFIERS)).map("".join)
# Percent-encoded bytes as a client may send them, UTF-8 or not (%ff is no character).
raw_bytes = st.binary(max_size=6).map(lambda b: Encoded("".join(f"%{x:02x}" for x in b)))
searches = st.tuples(
    st.sampled_from(TYPES),
    st.lists(st.tuples(names, st.one_of(values, raw_bytes)), min_size=1, max_size=4),
    st.booleans(),
)


def _encoded(text: str) -> str:
    return text if isinstance(text, Encoded) else quote(text, safe="")


def _answered(response: Any, query: str) -> None:
    assert response.status_code < 500, (query, response.status_code, response.text[:500])
    body = response.json()
    if response.status_code >= 400:
        assert body["resourceType"] == "OperationOutcome", query
        assert body["issue"] and all(i.get("diagnostics") for i in body["issue"]), query
    else:
        assert (body["resourceType"], body["type"]) == ("Bundle", "searchset"), query


@pytest.fixture
def callers(client: TestClient, issue_token: Callable[..., str]) -> dict[str, dict[str, str]]:
    """A clinician's app (the `client` fixture's token), a hospital's backend client and
    the citizen's own app (patient/ scopes), over a small record the clinician wrote."""
    anna = client.post(
        "/fhir/Patient",
        json={
            "resourceType": "Patient",
            "identifier": [{"system": "urn:oid:1.2.208.176.1.2", "value": "0105801234"}],
            "name": [{"family": "Jensen", "given": ["Anna"]}],
            "birthDate": "1980-05-01",
        },
    )
    assert anna.status_code == 201, anna.text
    weight = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
        "subject": {"reference": f"Patient/{anna.json()['id']}"},
        "effectiveDateTime": "2024-03-01",
        "valueQuantity": {"value": 61.5, "system": "http://unitsofmeasure.org", "code": "kg"},
    }
    created = client.post("/fhir/Observation", json=weight)
    assert created.status_code == 201, created.text
    source = issue_token(scope="system/*.cruds", actor_kind="client")
    anna_id = anna.json()["id"]
    citizen = issue_token(
        scope="patient/*.rs",
        actor_kind="citizen",
        patient_id=anna_id,
        fhir_user=f"Patient/{anna_id}",
        national_id="0105801234",
    )
    return {
        "clinician": dict(client.headers),
        "source": bearer(source),
        "citizen": bearer(citizen),
    }


@pytest.mark.parametrize("caller", ["clinician", "source", "citizen"])
@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(search=searches)
def test_any_search_is_answered_with_a_bundle_or_an_operation_outcome(
    client: TestClient,
    callers: dict[str, dict[str, str]],
    caller: str,
    search: tuple[str, list[tuple[str, str]], bool],
) -> None:
    resource_type, params, by_post = search
    query = "&".join(f"{_encoded(name)}={_encoded(value)}" for name, value in params)
    headers = callers[caller]
    if by_post:
        response = client.post(
            f"/fhir/{resource_type}/_search",
            content=query.encode(),
            headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
        )
    else:
        response = client.get(f"/fhir/{resource_type}?{query}", headers=headers)
    _answered(response, query)
