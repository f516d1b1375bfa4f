"""Identical conditional creates arriving at the same moment store one resource.

https://hl7.org/fhir/R4/http.html#ccreate: with If-None-Exist, a server creates the
resource only when nothing matches. Sixteen clients racing with the same criteria must
still leave exactly one resource behind, on SQLite and on PostgreSQL alike.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import httpx

CLIENTS = 16
FHIR_JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
NHS_NUMBER = "https://fhir.nhs.uk/Id/nhs-number"


class LiveServer(Protocol):
    """The `live_server` fixture (tests/conftest.py): the app on a real port."""

    fhir_url: str


def _all_at_once(request: Callable[[httpx.Client], httpx.Response]) -> list[httpx.Response]:
    """Run `request` from CLIENTS threads, each on its own connection, released together."""
    barrier = threading.Barrier(CLIENTS)

    def one() -> httpx.Response:
        with httpx.Client(timeout=60) as http:
            barrier.wait(timeout=30)
            return request(http)

    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        futures = [pool.submit(one) for _ in range(CLIENTS)]
        return [future.result() for future in futures]


def _patients_with(live_server: LiveServer, identifier: str) -> list[str]:
    found = httpx.get(
        f"{live_server.fhir_url}/Patient",
        params={"identifier": identifier},
        headers={**FHIR_JSON, **live_server.headers},
    )
    assert found.status_code == 200, found.text
    bundle = found.json()
    assert bundle["total"] == len(bundle.get("entry", []))
    return [entry["resource"]["id"] for entry in bundle.get("entry", [])]


def test_simultaneous_conditional_creates_store_one_patient(live_server: LiveServer) -> None:
    identifier = f"{NHS_NUMBER}|9434765919"
    patient = {
        "resourceType": "Patient",
        "identifier": [{"system": NHS_NUMBER, "value": "9434765919"}],
        "name": [{"family": "Race", "given": ["Ada"]}],
    }

    responses = _all_at_once(
        lambda http: http.post(
            f"{live_server.fhir_url}/Patient",
            json=patient,
            headers={
                **FHIR_JSON,
                **live_server.headers,
                "If-None-Exist": f"identifier={identifier}",
            },
        )
    )

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * (CLIENTS - 1) + [201], [r.text for r in responses]
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == 1
    assert {r.headers["Location"].split("/_history/")[0] for r in responses} == {
        f"{live_server.fhir_url}/Patient/{ids.pop()}"
    }
    assert len(_patients_with(live_server, identifier)) == 1


def test_simultaneous_conditional_create_transactions_store_one_patient(
    live_server: LiveServer,
) -> None:
    identifier = f"{NHS_NUMBER}|9434765870"
    transaction = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:5a1f0f55-6d8e-4c36-9a38-0d0f3e1d9b11",
                "resource": {
                    "resourceType": "Patient",
                    "identifier": [{"system": NHS_NUMBER, "value": "9434765870"}],
                    "name": [{"family": "Race", "given": ["Grace"]}],
                },
                "request": {
                    "method": "POST",
                    "url": "Patient",
                    "ifNoneExist": f"identifier={identifier}",
                },
            }
        ],
    }

    responses = _all_at_once(
        lambda http: http.post(
            live_server.fhir_url, json=transaction, headers={**FHIR_JSON, **live_server.headers}
        )
    )

    refused = [(r.status_code, r.text) for r in responses if r.status_code != 200]
    assert not refused, refused
    entries = [r.json()["entry"][0]["response"] for r in responses]
    statuses = sorted(e["status"] for e in entries)
    assert statuses == ["200 OK"] * (CLIENTS - 1) + ["201 Created"], entries
    locations = {e["location"].split("/_history/")[0] for e in entries}
    assert len(locations) == 1
    stored = _patients_with(live_server, identifier)
    assert [f"Patient/{patient_id}" for patient_id in stored] == list(locations)


def test_simultaneous_transactions_referencing_one_conditional_patient_share_it(
    live_server: LiveServer,
) -> None:
    # The pattern of a hospital push: the Patient is created only if new, and the
    # Observation refers to it by the entry's fullUrl, so the reference must end up
    # at whichever Patient won the race.
    identifier = f"{NHS_NUMBER}|9434765846"
    patient_url = "urn:uuid:2f0c8d3e-7a51-4b8e-9d7c-63a1f0e4c2aa"

    def push(http: httpx.Client) -> httpx.Response:
        transaction = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "fullUrl": patient_url,
                    "resource": {
                        "resourceType": "Patient",
                        "identifier": [{"system": NHS_NUMBER, "value": "9434765846"}],
                    },
                    "request": {
                        "method": "POST",
                        "url": "Patient",
                        "ifNoneExist": f"identifier={identifier}",
                    },
                },
                {
                    "fullUrl": "urn:uuid:8d2b7e60-1c4f-4f0e-b5a9-2e7d3c9f6b01",
                    "resource": {
                        "resourceType": "Observation",
                        "status": "final",
                        "code": {"text": "body weight"},
                        "subject": {"reference": patient_url},
                    },
                    "request": {"method": "POST", "url": "Observation"},
                },
            ],
        }
        return http.post(
            live_server.fhir_url, json=transaction, headers={**FHIR_JSON, **live_server.headers}
        )

    responses = _all_at_once(push)

    refused = [(r.status_code, r.text) for r in responses if r.status_code != 200]
    assert not refused, refused
    stored = _patients_with(live_server, identifier)
    assert len(stored) == 1
    observations = [r.json()["entry"][1]["response"]["location"] for r in responses]
    assert len(set(observations)) == CLIENTS
    for location in observations:
        observation = httpx.get(
            f"{live_server.fhir_url}/{location}", headers={**FHIR_JSON, **live_server.headers}
        ).json()
        assert observation["subject"] == {"reference": f"Patient/{stored[0]}"}


def test_simultaneous_batches_of_conditional_creates_store_one_of_each(
    live_server: LiveServer,
) -> None:
    # A provider directory pushed by several clients at once: each batch's entries run
    # in one group (health.fhir.transaction._batch_group), their claims taken as they
    # go and their writes flushed at the group's end, or when a lookup must see them.
    cvr = "urn:oid:1.2.208.176.1.1"
    values = ["29190925", "29190968", "29190976"]

    def organization(value: str) -> dict[str, object]:
        return {
            "resource": {
                "resourceType": "Organization",
                "identifier": [{"system": cvr, "value": value}],
                "name": f"Afdeling {value}",
            },
            "request": {
                "method": "POST",
                "url": "Organization",
                "ifNoneExist": f"identifier={cvr}|{value}",
            },
        }

    location = {
        "resource": {
            "resourceType": "Location",
            "managingOrganization": {"reference": f"Organization?identifier={cvr}|{values[1]}"},
        },
        "request": {"method": "POST", "url": "Location"},
    }
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [*(organization(value) for value in values), location],
    }

    responses = _all_at_once(
        lambda http: http.post(
            live_server.fhir_url, json=batch, headers={**FHIR_JSON, **live_server.headers}
        )
    )

    refused = [(r.status_code, r.text) for r in responses if r.status_code != 200]
    assert not refused, refused
    answers = [[e["response"] for e in r.json()["entry"]] for r in responses]
    for position, value in enumerate(values):
        statuses = sorted(a[position]["status"] for a in answers)
        assert statuses == ["200 OK"] * (CLIENTS - 1) + ["201 Created"], (value, statuses)
        locations = {a[position]["location"].split("/_history/")[0] for a in answers}
        found = httpx.get(
            f"{live_server.fhir_url}/Organization",
            params={"identifier": f"{cvr}|{value}"},
            headers={**FHIR_JSON, **live_server.headers},
        ).json()
        assert [f"Organization/{e['resource']['id']}" for e in found["entry"]] == list(locations)
    # Every Location was created, and refers to the one Organization of its condition.
    assert {a[3]["status"] for a in answers} == {"201 Created"}
    (managed_by,) = {a[1]["location"].split("/_history/")[0] for a in answers}
    for answer in answers:
        stored = httpx.get(
            f"{live_server.fhir_url}/{answer[3]['location']}",
            headers={**FHIR_JSON, **live_server.headers},
        ).json()
        assert stored["managingOrganization"] == {"reference": managed_by}
