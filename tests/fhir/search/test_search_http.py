"""Search over HTTP, end to end: GET and POST _search, Bundle links, totals, includes.

These rely on the extractor filling the index at write time (health/fhir/search/extract.py).
https://hl7.org/fhir/R4/search.html
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

BASE = "http://testserver/fhir"
CPR = "urn:oid:1.2.208.176.1.2"
LOINC = "http://loinc.org"


def patient(family: str, given: str, born: str, gender: str, cpr: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": CPR, "value": cpr}],
        "name": [{"family": family, "given": [given]}],
        "birthDate": born,
        "gender": gender,
    }


def observation(subject: str, code: str, value: float, when: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code, "display": "Body weight"}]},
        "subject": {"reference": subject},
        "effectiveDateTime": when,
        "valueQuantity": {
            "value": value,
            "unit": "kg",
            "system": "http://unitsofmeasure.org",
            "code": "kg",
        },
    }


@pytest.fixture
def people(fhir: Any) -> dict[str, str]:
    """Four patients and some of their weights; name -> id."""
    ids = {
        "anna": fhir.create(patient("Jensen", "Anna", "1980-05-01", "female", "0105801234"))["id"],
        "bo": fhir.create(patient("Jensen", "Bo", "1975-02-11", "male", "1102751234"))["id"],
        "søren": fhir.create(patient("Sørensen", "Søren", "1990-12-24", "male", "2412901234"))[
            "id"
        ],
        "ida": fhir.create(patient("Hansen", "Ida", "2001-07-30", "female", "3007011234"))["id"],
    }
    fhir.create(observation(f"Patient/{ids['anna']}", "29463-7", 61.5, "2024-03-01T10:00:00Z"))
    fhir.create(observation(f"Patient/{ids['anna']}", "29463-7", 63.0, "2025-03-01T10:00:00Z"))
    fhir.create(observation(f"Patient/{ids['bo']}", "8302-2", 180.0, "2025-01-15T09:30:00Z"))
    return ids


def search(client: TestClient, path: str, **params: str) -> dict[str, Any]:
    response = client.get(f"/fhir/{path}", params=params)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def names(bundle: dict[str, Any]) -> list[str]:
    return [
        e["resource"]["name"][0]["given"][0]
        for e in bundle.get("entry", [])
        if e["search"]["mode"] == "match"
    ]


def links(bundle: dict[str, Any]) -> dict[str, str]:
    return {link["relation"]: link["url"] for link in bundle["link"]}


def test_string_token_and_date_criteria(client: TestClient, people: dict[str, str]) -> None:
    assert names(search(client, "Patient", family="jensen", _sort="given")) == ["Anna", "Bo"]
    assert names(search(client, "Patient", family="SØREN")) == ["Søren"]
    # Case and accents do not matter (ø is a letter of its own, not an accented o).
    assert names(search(client, "Patient", family="JÉNSEN", _sort="given")) == ["Anna", "Bo"]
    assert names(search(client, "Patient", gender="female", _sort="-birthdate")) == [
        "Ida",
        "Anna",
    ]
    assert names(search(client, "Patient", birthdate="ge1980", _sort="birthdate")) == [
        "Anna",
        "Søren",
        "Ida",
    ]
    assert names(search(client, "Patient", identifier=f"{CPR}|1102751234")) == ["Bo"]
    assert names(search(client, "Patient", **{"gender:not": "male", "_sort": "given"})) == [
        "Anna",
        "Ida",
    ]


def test_quantity_reference_chain_and_has(client: TestClient, people: dict[str, str]) -> None:
    heavy = search(client, "Observation", **{"value-quantity": "gt62|http://unitsofmeasure.org|kg"})
    assert heavy["total"] == 2
    annas = search(client, "Observation", subject=f"Patient/{people['anna']}")
    assert annas["total"] == 2
    chained = search(client, "Observation", **{"subject:Patient.identifier": f"{CPR}|0105801234"})
    assert chained["total"] == 2
    by_name = search(client, "Observation", **{"subject.family": "jensen", "code": "8302-2"})
    assert by_name["total"] == 1
    weighed = search(client, "Patient", **{"_has:Observation:subject:code": f"{LOINC}|29463-7"})
    assert names(weighed) == ["Anna"]


def test_paging_follows_absolute_links_to_every_match_once(
    client: TestClient, fhir: Any, people: dict[str, str]
) -> None:
    first = search(client, "Patient", _count="1", _sort="family,given")
    assert first["total"] == 4
    assert links(first)["self"].startswith(f"{BASE}/Patient?")
    assert "previous" not in links(first)
    seen = names(first)
    next_url = links(first).get("next")
    fhir.create(patient("Aabye", "Eva", "1950-01-01", "female", "0101501234"))
    while next_url:
        assert next_url.startswith(f"{BASE}/Patient?")
        page = client.get(next_url.removeprefix("http://testserver")).json()
        assert "previous" in links(page)
        seen.extend(names(page))
        next_url = links(page).get("next")
    assert seen == ["Ida", "Anna", "Bo", "Søren"]


def test_post_search_with_a_form_body_is_the_same_search(
    client: TestClient, people: dict[str, str]
) -> None:
    response = client.post(
        "/fhir/Patient/_search",
        content="family=jensen&_sort=-given",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200, response.text
    assert names(response.json()) == ["Bo", "Anna"]


def test_summary_count_elements_and_total_none(client: TestClient, people: dict[str, str]) -> None:
    counted = search(client, "Patient", family="jensen", _summary="count")
    assert counted["total"] == 2 and "entry" not in counted
    subset = search(client, "Patient", family="hansen", _elements="birthDate")
    (resource,) = [e["resource"] for e in subset["entry"]]
    assert resource["birthDate"] == "2001-07-30" and "name" not in resource
    assert "SUBSETTED" in [t["code"] for t in resource["meta"]["tag"]]
    assert "total" not in search(client, "Patient", _total="none")


def test_include_adds_the_referenced_patients(client: TestClient, people: dict[str, str]) -> None:
    bundle = search(client, "Observation", code="29463-7", _include="Observation:subject")
    modes = [(e["resource"]["resourceType"], e["search"]["mode"]) for e in bundle["entry"]]
    assert sorted(modes) == [
        ("Observation", "match"),
        ("Observation", "match"),
        ("Patient", "include"),
    ]
    assert bundle["total"] == 2


def test_unknown_parameters_are_400_unless_lenient(
    client: TestClient, fhir: Any, people: dict[str, str]
) -> None:
    refused = client.get("/fhir/Patient", params={"nickname": "x", "family": "jensen"})
    assert refused.status_code == 400
    assert "nickname" in fhir.diagnostics(refused)

    lenient = client.get(
        "/fhir/Patient",
        params={"nickname": "x", "family": "jensen"},
        headers={"Prefer": "handling=lenient"},
    )
    assert lenient.status_code == 200
    assert lenient.json()["total"] == 2
    assert "nickname" not in links(lenient.json())["self"]


def test_a_batch_get_entry_searches(client: TestClient, fhir: Any, people: dict[str, str]) -> None:
    response = fhir.post_bundle(
        {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [{"request": {"method": "GET", "url": "Patient?family=jensen&_count=1"}}],
        }
    )
    assert response.status_code == 200, response.text
    inner = response.json()["entry"][0]["resource"]
    assert inner["type"] == "searchset" and inner["total"] == 2 and "next" in links(inner)


def test_conditional_create_accepts_any_criteria(
    client: TestClient, fhir: Any, people: dict[str, str]
) -> None:
    response = client.post(
        "/fhir/Patient",
        json=patient("Hansen", "Ida", "2001-07-30", "female", "3007011234"),
        headers={"If-None-Exist": "family=hansen&birthdate=2001-07-30"},
    )
    assert response.status_code == 200
    assert response.json()["id"] == people["ida"]


def test_the_capability_statement_lists_the_search_parameters(client: TestClient) -> None:
    statement = client.get("/fhir/metadata").json()
    patient_entry = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Patient")
    params = {p["name"]: p["type"] for p in patient_entry["searchParam"]}
    assert params["birthdate"] == "date"
    assert params["family"] == "string"
    assert params["general-practitioner"] == "reference"
    assert params["_lastUpdated"] == "date"
