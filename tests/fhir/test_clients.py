"""Real FHIR client libraries, written elsewhere, talking HTTP to the running server.

fhirpy (https://github.com/beda-software/fhir-py) and fhirclient, the SMART on FHIR
Python client (https://github.com/smart-on-fhir/client-py), each do the everyday loop:
create, read, update with If-Match (a stale version is refused with 412), history,
and a transaction Bundle. If a library's public API cannot send something, the test
uses that library's own lower-level request helper and says so.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import pytest
import requests
from fhirclient import client as smart_client
from fhirclient.auth import FHIROAuth2Auth
from fhirclient.models.bundle import Bundle as SmartBundle
from fhirclient.models.capabilitystatement import CapabilityStatement as SmartCapability
from fhirclient.models.fhirdate import FHIRDate
from fhirclient.models.operationoutcome import OperationOutcome as SmartOutcome
from fhirclient.models.patient import Patient as SmartPatient
from fhirclient.server import FHIRServer
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import MultipleResourcesFound

CPR = "urn:oid:1.2.208.176.1.2"


class LiveServer(Protocol):
    """The `live_server` fixture (tests/conftest.py): the app on a real port."""

    fhir_url: str


def _transaction(cpr: str, family: str) -> dict[str, Any]:
    """A hospital push: a Patient and an Encounter that refers to it by fullUrl."""
    patient_url = "urn:uuid:0b6f3f0e-3f0b-4b9e-8a52-5b8f3a3f7c01"
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": patient_url,
                "resource": {
                    "resourceType": "Patient",
                    "identifier": [{"system": CPR, "value": cpr}],
                    "name": [{"family": family}],
                },
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "fullUrl": "urn:uuid:0b6f3f0e-3f0b-4b9e-8a52-5b8f3a3f7c02",
                "resource": {
                    "resourceType": "Encounter",
                    "status": "finished",
                    "class": {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                        "code": "AMB",
                    },
                    "subject": {"reference": patient_url},
                },
                "request": {"method": "POST", "url": "Encounter"},
            },
        ],
    }


# fhirpy


def test_fhirpy_creates_reads_and_updates_with_if_match(live_server: LiveServer) -> None:
    fhir = SyncFHIRClient(live_server.fhir_url, extra_headers=live_server.headers)
    patient = fhir.resource(
        "Patient", identifier=[{"system": CPR, "value": "0101701234"}], name=[{"family": "Hansen"}]
    )
    patient.save()
    assert patient.id
    assert patient["meta"]["versionId"] == "1"

    read = fhir.reference("Patient", patient.id).to_resource()
    assert read["name"] == [{"family": "Hansen"}]
    assert read["identifier"] == [{"system": CPR, "value": "0101701234"}]

    # fhirpy's save() sends no If-Match of its own; extra_headers, a constructor
    # argument of its public API, puts one on every request of that client.
    as_of_version_1 = SyncFHIRClient(
        live_server.fhir_url, extra_headers={**live_server.headers, "If-Match": 'W/"1"'}
    )
    edit = as_of_version_1.resource("Patient", **read)
    edit["birthDate"] = "1970-01-01"
    edit.save()
    assert edit["meta"]["versionId"] == "2"

    stale = as_of_version_1.resource("Patient", **read)
    stale["birthDate"] = "1999-12-31"
    # fhirpy turns every 412 into MultipleResourcesFound; the body says what happened.
    with pytest.raises(MultipleResourcesFound, match="If-Match") as refused:
        stale.save()
    assert '"resourceType":"OperationOutcome"' in str(refused.value)

    current = fhir.get("Patient", patient.id)
    assert current["birthDate"] == "1970-01-01"
    assert current["meta"]["versionId"] == "2"


def test_fhirpy_reads_the_history_of_a_resource(live_server: LiveServer) -> None:
    fhir = SyncFHIRClient(live_server.fhir_url, extra_headers=live_server.headers)
    patient = fhir.resource("Patient", name=[{"family": "Berg"}])
    patient.save()
    patient["name"] = [{"family": "Berg-Olsen"}]
    patient.save()

    # fhirpy has no history call; execute() is its public way to any other request.
    history = fhir.execute(f"Patient/{patient.id}/_history", method="get")

    assert history["type"] == "history"
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["2", "1"]
    assert [e["resource"]["name"][0]["family"] for e in history["entry"]] == [
        "Berg-Olsen",
        "Berg",
    ]
    assert [e["request"]["method"] for e in history["entry"]] == ["PUT", "POST"]


def test_fhirpy_sends_a_transaction_whose_references_resolve(live_server: LiveServer) -> None:
    fhir = SyncFHIRClient(live_server.fhir_url, extra_headers=live_server.headers)

    # A transaction is a POST to the base URL; fhirpy's execute() with an empty path.
    response = fhir.execute("", method="post", data=_transaction("0202801234", "Nielsen"))

    assert response["type"] == "transaction-response"
    assert [e["response"]["status"] for e in response["entry"]] == ["201 Created"] * 2
    patients = fhir.resources("Patient").search(identifier=f"{CPR}|0202801234").fetch_all()
    assert [p["name"] for p in patients] == [[{"family": "Nielsen"}]]
    encounter_id = response["entry"][1]["response"]["location"].split("/")[1]
    encounter = fhir.get("Encounter", encounter_id)
    assert encounter["subject"] == {"reference": f"Patient/{patients[0].id}"}


# fhirclient (SMART on FHIR)


def _smart_server(live_server: LiveServer) -> FHIRServer:
    """A fhirclient connection, prepared the library's way: it reads /metadata first,
    finds the SMART endpoints there, and is not ready until it holds a token."""
    smart = smart_client.FHIRClient(
        settings={"app_id": "health-tests", "api_base": live_server.fhir_url}
    )
    assert not smart.prepare(), "fhirclient took the server for an open one"
    auth = smart.server.auth
    assert isinstance(auth, FHIROAuth2Auth)
    base = live_server.fhir_url.removesuffix("/fhir")
    assert auth._authorize_uri == f"{base}/auth/authorize"
    assert auth._token_uri == f"{base}/auth/token"
    # The token a SMART flow would have given it (tests/auth/ runs those flows); from
    # here fhirclient signs its requests itself.
    auth.access_token = live_server.headers["Authorization"].removeprefix("Bearer ")
    assert smart.prepare()
    return smart.server


@contextmanager
def _request_header(server: FHIRServer, name: str, value: str) -> Iterator[None]:
    """Send one more header on this server's requests.

    fhirclient's update() and put_json() take no headers, so If-Match travels on the
    library's own requests.Session, the transport all its calls share.
    """
    server.session.headers[name] = value
    try:
        yield
    finally:
        del server.session.headers[name]


def test_fhirclient_parses_the_capability_statement(live_server: LiveServer) -> None:
    server = _smart_server(live_server)

    capability = server.capabilityStatement

    assert isinstance(capability, SmartCapability)
    assert capability.fhirVersion.startswith("4.0")
    served = {r.type for r in capability.rest[0].resource}
    assert {"Patient", "Observation", "Encounter"} <= served


def test_fhirclient_creates_reads_and_updates_with_if_match(live_server: LiveServer) -> None:
    server = _smart_server(live_server)
    new = SmartPatient(
        {"identifier": [{"system": CPR, "value": "0303901234"}], "name": [{"family": "Larsen"}]}
    )
    created = new.create(server)
    assert created is not None
    patient_id = created["id"]

    patient = SmartPatient.read(patient_id, server)
    assert patient.name[0].family == "Larsen"
    assert patient.meta.versionId == "1"

    patient.birthDate = FHIRDate("1990-03-03")
    with _request_header(server, "If-Match", 'W/"1"'):
        updated = patient.update(server)
    assert updated is not None
    assert updated["meta"]["versionId"] == "2"

    patient.birthDate = FHIRDate("1991-01-01")
    with (
        _request_header(server, "If-Match", 'W/"1"'),
        pytest.raises(requests.HTTPError) as refused,
    ):
        patient.update(server)
    assert refused.value.response.status_code == 412
    outcome = SmartOutcome(refused.value.response.json())
    assert "If-Match" in outcome.issue[0].diagnostics

    current = SmartPatient.read(patient_id, server)
    assert current.birthDate.isostring == "1990-03-03"
    assert current.meta.versionId == "2"


def test_fhirclient_reads_history_as_a_bundle(live_server: LiveServer) -> None:
    server = _smart_server(live_server)
    created = SmartPatient({"name": [{"family": "Holm"}]}).create(server)
    assert created is not None
    patient = SmartPatient.read(created["id"], server)
    patient.gender = "female"
    patient.update(server)

    # fhirclient has no history call; request_json() is its helper for any GET.
    history = SmartBundle(server.request_json(f"Patient/{patient.id}/_history"))

    assert history.type == "history"
    versions = [SmartPatient(e.resource.as_json()) for e in history.entry]
    assert [v.meta.versionId for v in versions] == ["2", "1"]
    assert [v.gender for v in versions] == ["female", None]


def test_fhirclient_sends_a_transaction_whose_references_resolve(
    live_server: LiveServer,
) -> None:
    server = _smart_server(live_server)
    transaction = SmartBundle(_transaction("0404001234", "Madsen"))

    response = SmartBundle(transaction.create(server))

    assert response.type == "transaction-response"
    assert [e.response.status for e in response.entry] == ["201 Created"] * 2
    found = list(
        SmartPatient.where({"identifier": f"{CPR}|0404001234"}).perform_resources_iter(server)
    )
    assert [p.name[0].family for p in found] == ["Madsen"]
    encounter_path = response.entry[1].response.location.split("/_history/")[0]
    encounter = server.request_json(encounter_path)
    assert encounter["subject"] == {"reference": f"Patient/{found[0].id}"}


# Searches as the clients send them, following next links


def _observations(patient_id: str, count: int) -> list[dict[str, Any]]:
    return [
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4"}]},
            "subject": {"reference": f"Patient/{patient_id}"},
            "effectiveDateTime": f"2020-01-{day + 1:02d}",
            "valueQuantity": {"value": 40 + day, "unit": "mmol/mol"},
        }
        for day in range(count)
    ]


def test_fhirpy_searches_and_pages_through_next_links(live_server: LiveServer) -> None:
    fhir = SyncFHIRClient(live_server.fhir_url, extra_headers=live_server.headers)
    patient = fhir.resource("Patient", name=[{"family": "Holm"}])
    patient.save()
    for observation in _observations(patient.id, 7):
        fhir.resource("Observation", **observation).save()

    search = (
        fhir.resources("Observation")
        .search(subject=f"Patient/{patient.id}", code="http://loinc.org|4548-4")
        .search(date__ge="2020-01-02")
        .sort("date")
        .limit(3)
    )
    # fetch_all() follows the server's next links page by page.
    found = search.fetch_all()

    assert [o["effectiveDateTime"] for o in found] == [f"2020-01-{d:02d}" for d in range(2, 8)]
    # fhirpy's count() adds `_totalMethod`, an Aidbox parameter: unknown, so refused
    # unless the client asks for lenient handling (https://hl7.org/fhir/R4/search.html#errors).
    lenient = SyncFHIRClient(
        live_server.fhir_url, extra_headers={**live_server.headers, "Prefer": "handling=lenient"}
    )
    assert lenient.resources("Observation").search(subject=f"Patient/{patient.id}").count() == 7


def test_fhirclient_searches_and_follows_next_links(live_server: LiveServer) -> None:
    from fhirclient.models.observation import Observation as SmartObservation

    server = _smart_server(live_server)
    patient = SmartPatient({"name": [{"family": "Lund"}]})
    patient_id = patient.create(server)["id"]
    for observation in _observations(patient_id, 5):
        SmartObservation(observation).create(server)

    search = SmartObservation.where(
        struct={"subject": f"Patient/{patient_id}", "_count": "2", "_sort": "date"}
    )
    # perform_resources_iter() fetches the next pages through Bundle.link "next".
    found = list(search.perform_resources_iter(server))

    assert [o.as_json()["effectiveDateTime"] for o in found] == [
        f"2020-01-{d:02d}" for d in range(1, 6)
    ]
