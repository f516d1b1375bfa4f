"""Patient/$everything over HTTP: a patient's whole record, and nothing of anyone else's.

https://hl7.org/fhir/R4/patient-operation-everything.html
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest
from fastapi.testclient import TestClient

FHIR_JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


def _entry(full_url: str, resource: dict[str, Any]) -> dict[str, Any]:
    return {
        "fullUrl": full_url,
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"]},
    }


def _record_bundle(tag: str, organization: str | None = None) -> dict[str, Any]:
    """A hospital's transaction: a patient, an encounter, three observations, a
    practitioner and an organisation (or a reference to an existing one)."""
    patient, encounter = f"urn:uuid:{tag}-patient", f"urn:uuid:{tag}-encounter"
    practitioner = f"urn:uuid:{tag}-practitioner"
    org_reference = organization or f"urn:uuid:{tag}-organization"
    entries = [
        _entry(patient, {"resourceType": "Patient", "name": [{"family": tag}]}),
        _entry(practitioner, {"resourceType": "Practitioner", "name": [{"family": f"Dr {tag}"}]}),
        _entry(
            encounter,
            {
                "resourceType": "Encounter",
                "status": "finished",
                "class": {"code": "AMB"},
                "subject": {"reference": patient},
                "participant": [{"individual": {"reference": practitioner}}],
                "serviceProvider": {"reference": org_reference},
            },
        ),
    ]
    if organization is None:
        entries.append(
            _entry(org_reference, {"resourceType": "Organization", "name": f"{tag} hospital"})
        )
    for n in range(3):
        entries.append(
            _entry(
                f"urn:uuid:{tag}-observation-{n}",
                {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                    "subject": {"reference": patient},
                    "encounter": {"reference": encounter},
                    "performer": [{"reference": practitioner}],
                    "valueQuantity": {"value": 60 + n, "unit": "/min"},
                },
            )
        )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def _post(client: TestClient, bundle: dict[str, Any]) -> list[str]:
    """POST a transaction; the `Type/id` each entry created, in entry order."""
    response = client.post("/fhir", content=orjson.dumps(bundle), headers=FHIR_JSON)
    assert response.status_code == 200, response.text
    return [
        "/".join(entry["response"]["location"].split("/")[:2]) for entry in response.json()["entry"]
    ]


def _everything(client: TestClient, patient: str, **params: str) -> dict[str, Any]:
    response = client.get(f"/fhir/{patient}/$everything", params=params)
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
    return bundle  # type: ignore[no-any-return]


def _keys(bundle: dict[str, Any]) -> list[str]:
    return [f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle["entry"]]


def _next(bundle: dict[str, Any]) -> str | None:
    return next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)


def _all_pages(client: TestClient, patient: str, **params: str) -> list[str]:
    """Every key of every page, following the next links."""
    bundle = _everything(client, patient, **params)
    keys = _keys(bundle)
    while (url := _next(bundle)) is not None:
        parts = urlsplit(url)
        response = client.get(f"{parts.path}?{parts.query}")
        assert response.status_code == 200, response.text
        bundle = response.json()
        keys += _keys(bundle)
    return keys


@pytest.fixture
def records(client: TestClient) -> dict[str, list[str]]:
    """Two patients' records; the second patient's encounter uses the first's hospital."""
    first = _post(client, _record_bundle("first"))
    organization = next(key for key in first if key.startswith("Organization/"))
    second = _post(client, _record_bundle("second", organization=organization))
    unreferenced = _post(
        client,
        {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [_entry("urn:uuid:lonely", {"resourceType": "Practitioner"})],
        },
    )
    return {"first": first, "second": [*second, organization], "unreferenced": unreferenced}


def test_everything_is_the_patients_record_and_the_directory_it_refers_to(
    client: TestClient, records: dict[str, list[str]]
) -> None:
    for name in ("first", "second"):
        patient = records[name][0]
        bundle = _everything(client, patient)
        assert sorted(_keys(bundle)) == sorted(records[name]), name
        modes = {
            key: entry["search"]["mode"]
            for key, entry in zip(_keys(bundle), bundle["entry"], strict=True)
        }
        directory = {
            k for k in records[name] if k.split("/")[0] in ("Practitioner", "Organization")
        }
        assert {k for k, mode in modes.items() if mode == "include"} == directory
        for entry in bundle["entry"]:
            assert entry["fullUrl"] == f"http://testserver/fhir/{_keys({'entry': [entry]})[0]}"


def test_everything_never_holds_another_patients_resources(
    client: TestClient, records: dict[str, list[str]]
) -> None:
    first = set(_all_pages(client, records["first"][0]))
    second = set(_all_pages(client, records["second"][0]))
    shared = {k for k in records["first"] if k.startswith("Organization/")}
    assert first & second == shared
    assert not first & set(records["unreferenced"])


def test_type_limits_the_record_to_the_types_named(
    client: TestClient, records: dict[str, list[str]]
) -> None:
    patient = records["first"][0]
    keys = _all_pages(client, patient, _type="Observation,Practitioner")
    wanted = [k for k in records["first"] if k.split("/")[0] in ("Observation", "Practitioner")]
    assert sorted(keys) == sorted(wanted)
    assert _all_pages(client, patient, _type="Patient") == [patient]


def test_since_keeps_what_changed_at_or_after_the_instant(
    client: TestClient, records: dict[str, list[str]]
) -> None:
    patient = records["first"][0]
    observation = next(k for k in records["first"] if k.startswith("Observation/"))
    stored = client.get(f"/fhir/{observation}").json()
    stored["status"] = "amended"
    updated = client.put(f"/fhir/{observation}", json=stored, headers=FHIR_JSON)
    assert updated.status_code == 200, updated.text
    since = updated.json()["meta"]["lastUpdated"]
    assert _all_pages(client, patient, _since=since) == [observation]
    assert sorted(_all_pages(client, patient, _since="2000-01-01")) == sorted(records["first"])


def test_count_pages_through_the_record_once_with_the_criteria_kept(
    client: TestClient, records: dict[str, list[str]]
) -> None:
    patient = records["first"][0]
    first_page = _everything(client, patient, _count="2", _type="Observation,Encounter")
    assert len(first_page["entry"]) == 2
    next_url = _next(first_page)
    assert next_url is not None and "_type=Observation%2CEncounter" in next_url
    assert "_count=2" in next_url
    keys = _all_pages(client, patient, _count="2")
    assert len(keys) == len(set(keys)) == len(records["first"])
    assert set(keys) == set(records["first"])


def test_paging_neither_repeats_nor_skips_while_the_record_changes(
    client: TestClient, records: dict[str, list[str]]
) -> None:
    patient = records["first"][0]
    before = set(records["first"])
    bundle = _everything(client, patient, _count="3")
    seen = _keys(bundle)
    # Between pages: a page already sent is updated, and a new observation arrives.
    changed = seen[0]
    current = client.get(f"/fhir/{changed}").json()
    assert client.put(f"/fhir/{changed}", json=current, headers=FHIR_JSON).status_code == 200
    new_observation = client.post(
        "/fhir/Observation",
        json={
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "late"},
            "subject": {"reference": patient},
        },
        headers=FHIR_JSON,
    )
    assert new_observation.status_code == 201, new_observation.text
    while (url := _next(bundle)) is not None:
        parts = urlsplit(url)
        bundle = client.get(f"{parts.path}?{parts.query}").json()
        seen += _keys(bundle)
    assert len(seen) == len(set(seen))
    assert before <= set(seen)


def test_an_unknown_patient_is_404_and_a_deleted_one_410(
    client: TestClient, records: dict[str, list[str]], fhir: Any
) -> None:
    response = client.get("/fhir/Patient/nobody/$everything")
    assert response.status_code == 404
    assert fhir.codes(response) == ["not-found"]
    lonely = fhir.create({"resourceType": "Patient"})
    assert client.delete(f"/fhir/Patient/{lonely['id']}").status_code == 204
    response = client.get(f"/fhir/Patient/{lonely['id']}/$everything")
    assert response.status_code == 410
    assert fhir.codes(response) == ["deleted"]


def test_my_own_record_needs_a_patient_context_token(client: TestClient, fhir: Any) -> None:
    response = client.get("/fhir/Patient/$everything")
    assert response.status_code == 403
    assert fhir.codes(response) == ["forbidden"]
    assert "patient context" in fhir.diagnostics(response)


@pytest.mark.parametrize(
    ("params", "where"),
    [
        ({"_type": "Observation,Nonsense"}, "_type"),
        ({"_since": "yesterday"}, "_since"),
        ({"_count": "-1"}, "_count"),
        ({"_cursor": "not a cursor"}, "_cursor"),
        ({"start": "2020-01-01"}, "start"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(
    client: TestClient, records: dict[str, list[str]], fhir: Any, params: dict[str, str], where: str
) -> None:
    response = client.get(f"/fhir/{records['first'][0]}/$everything", params=params)
    assert response.status_code == 400, response.text
    assert fhir.expressions(response) == [where]


def test_the_capability_statement_names_the_operation(client: TestClient) -> None:
    statement = client.get("/fhir/metadata").json()
    patient = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Patient")
    # The interactions are read from the mounted routes (FastAPI wraps included routers).
    assert {"code": "read"} in patient["interaction"]
    assert patient["operation"] == [
        {
            "name": "everything",
            "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
        }
    ]
    observation = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Observation")
    assert "operation" not in observation


# Synthea records (../shared/data), two patients in one database

SYNTHEA_2019 = "synthea/smart-r4-synthea-2019"
PATIENTS_2019 = (
    "Antonio_Castellanos_6d2eba67-5b4a-403f-a29f-e6da3f1ea963.json",
    "Cathryn_Windler_5b477e00-ba36-4786-b672-a2816b3b9149.json",
)
SYNTHEA_2021 = "synthea/fhir-data-pipes-hiv-2021"
PROVIDERS_2021 = (
    "hospitalInformation1633536936158.json",
    "practitionerInformation1633536936158.json",
)
PATIENTS_2021 = (
    "Bob965_Keeling57_3f6fd0bb-6cd3-eb3f-4401-cd38ace25f2b.json",
    "Danny396_Nikolaus26_7c329741-c2b4-e67a-f9ed-71e5b3dde79c.json",
)
DIRECTORY_TYPES = ("Organization", "Practitioner", "Location")


def _post_file(client: TestClient, path: Path) -> list[str]:
    response = client.post("/fhir", content=path.read_bytes(), headers=FHIR_JSON)
    assert response.status_code == 200, response.text[:2000]
    return [
        "/".join(entry["response"]["location"].split("/")[:2]) for entry in response.json()["entry"]
    ]


def _referenced_directory(client: TestClient, keys: list[str]) -> set[str]:
    """The Organizations, Practitioners and Locations the stored resources refer to."""
    found: set[str] = set()
    for key in keys:
        body = client.get(f"/fhir/{key}").content
        for reference in _references(orjson.loads(body)):
            if reference.split("/")[0] in DIRECTORY_TYPES:
                found.add(reference)
    return found


def _references(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [
            ref
            for key, value in node.items()
            for ref in ([value] if key == "reference" else _references(value))
        ]
    if isinstance(node, list):
        return [ref for item in node for ref in _references(item)]
    return []


@pytest.mark.shared_data
def test_two_2019_synthea_patients_each_get_exactly_their_bundle(
    client: TestClient, shared_data: Path
) -> None:
    # Each 2019 file carries the Organization and Practitioner its record refers to.
    loaded = [_post_file(client, shared_data / SYNTHEA_2019 / name) for name in PATIENTS_2019]
    for keys, other in ((loaded[0], loaded[1]), (loaded[1], loaded[0])):
        patient = next(k for k in keys if k.startswith("Patient/"))
        record = _all_pages(client, patient, _count="1000")
        assert len(record) == len(set(record))
        assert sorted(record) == sorted(keys)
        assert not set(record) & set(other)


@pytest.mark.shared_data
def test_two_2021_synthea_patients_get_their_bundle_and_the_providers_it_names(
    client: TestClient, shared_data: Path
) -> None:
    # The 2021 files name their providers by conditional references to shared files.
    for name in PROVIDERS_2021:
        _post_file(client, shared_data / SYNTHEA_2021 / name)
    loaded = [_post_file(client, shared_data / SYNTHEA_2021 / name) for name in PATIENTS_2021]
    for keys, other in ((loaded[0], loaded[1]), (loaded[1], loaded[0])):
        patient = next(k for k in keys if k.startswith("Patient/"))
        record = _all_pages(client, patient, _count="200")
        assert len(record) == len(set(record))
        providers = _referenced_directory(client, keys)
        assert providers
        assert sorted(record) == sorted([*keys, *providers])
        assert not set(record) & (set(other) - providers)
