"""A push from a hospital or GP: one record per citizen, sources kept, provenance written."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from health.db.engine import Database
from health.db.repository import Repository
from health.fhir.interactions import Interactions
from health.fhir.validation import check

# tests/conftest.py: the stored records, read as the system.
StoredRecords = Any

CPR = "urn:oid:1.2.208.176.1.2"
BSN = "http://fhir.nl/fhir/NamingSystem/bsn"
LOINC = "http://loinc.org"


def _bundle(*entries: dict[str, Any], kind: str = "transaction") -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def _post(resource: dict[str, Any], full_url: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"]},
    }
    if full_url:
        entry["fullUrl"] = full_url
    return entry


def _patient(cpr: str | None = "0101801234", **extra: Any) -> dict[str, Any]:
    identifiers = [{"system": CPR, "value": cpr}] if cpr else []
    identifiers += extra.pop("identifier", [])
    patient = {"resourceType": "Patient", "name": [{"family": "Jensen", "given": ["Karen"]}]}
    if identifiers:  # FHIR JSON has no empty arrays
        patient["identifier"] = identifiers
    return {**patient, **extra}


def _hemoglobin(subject: str, value: float, when: str = "2026-03-01T08:30:00Z") -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "718-7"}]},
        "subject": {"reference": subject},
        "effectiveDateTime": when,
        "valueQuantity": {
            "value": value,
            "unit": "g/dL",
            "system": "http://unitsofmeasure.org",
            "code": "g/dL",
        },
    }


def _push_of_karen(
    source_ids: str = "a", hemoglobin: float = 13.2, **patient: Any
) -> dict[str, Any]:
    """A hospital's transaction: Karen, with one lab result, in Synthea's urn:uuid style."""
    patient_url = f"urn:uuid:00000000-0000-0000-0000-00000000000{source_ids}"
    return _bundle(
        _post({**_patient(**patient), "id": f"p-{source_ids}"}, patient_url),
        _post(
            {**_hemoglobin(patient_url, hemoglobin), "id": f"obs-{source_ids}"},
            f"urn:uuid:10000000-0000-0000-0000-00000000000{source_ids}",
        ),
    )


def _search(client: TestClient, headers: dict[str, str], query: str) -> dict[str, Any]:
    response = client.get(f"/fhir/{query}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _resources(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        e["resource"]
        for e in bundle.get("entry", [])
        if e.get("search", {}).get("mode") != "include"
    ]


def test_two_sources_make_one_patient_with_both_records(
    sources: dict[str, Any], stored: StoredRecords
) -> None:
    hospital, gp = sources["hospital"], sources["gp"]
    hospital.pushed(_push_of_karen("a", identifier=[{"system": "urn:rh:mrn", "value": "RH-1"}]))
    gp.pushed(_push_of_karen("b", identifier=[{"system": "urn:gp:id", "value": "GP-7"}]))

    patients = stored.resources(f"Patient?identifier={CPR}|0101801234")
    assert len(patients) == 1
    karen = patients[0]
    values = {(i["system"], i["value"]) for i in karen["identifier"]}
    assert {(CPR, "0101801234"), ("urn:rh:mrn", "RH-1"), ("urn:gp:id", "GP-7")} <= values
    # Each source's own id for Karen is kept, under that source.
    assert (f"{hospital.uri}/patient-id", "p-a") in values
    assert (f"{gp.uri}/patient-id", "p-b") in values

    observations = stored.resources(f"Observation?subject=Patient/{karen['id']}")
    assert len(observations) == 2
    assert {o["meta"]["source"] for o in observations} == {hospital.uri, gp.uri}


def test_a_source_reads_back_what_it_pushed_not_what_another_pushed(
    sources: dict[str, Any],
) -> None:
    """A source sees what its organisation recorded and the Patient of each citizen it
    recorded something for; another source's entries for the same citizen stay hidden
    (health/access/policy.py)."""
    hospital, gp = sources["hospital"], sources["gp"]
    pushed = hospital.pushed(_push_of_karen("a", hemoglobin=13.2))
    gp.pushed(_push_of_karen("b", hemoglobin=9.1))
    hospital_observation = pushed["entry"][1]["response"]["location"].split("/_history/")[0]

    for source, value in ((hospital, 13.2), (gp, 9.1)):
        (karen,) = _resources(_search(source.client, source.headers, "Patient"))
        observations = _resources(
            _search(source.client, source.headers, f"Observation?subject=Patient/{karen['id']}")
        )
        assert [(o["meta"]["source"], o["valueQuantity"]["value"]) for o in observations] == [
            (source.uri, value)
        ]
        provenances = _resources(_search(source.client, source.headers, "Provenance"))
        assert [p["agent"][0]["who"]["reference"] for p in provenances] == [
            f"Organization/{source.organization_id}"
        ]
    # Nor by id: the other source's entry answers as a missing one would.
    assert hospital.client.get(f"/fhir/{hospital_observation}", headers=hospital.headers).is_success
    assert gp.client.get(f"/fhir/{hospital_observation}", headers=gp.headers).status_code == 404


def test_the_same_result_from_two_sources_is_kept_twice_and_linked(
    sources: dict[str, Any], stored: StoredRecords
) -> None:
    hospital, gp = sources["hospital"], sources["gp"]
    hospital.pushed(_push_of_karen("a", hemoglobin=13.2))
    gp.pushed(_push_of_karen("b", hemoglobin=13.2))
    gp.pushed(
        _bundle(
            _post(_patient(), "urn:uuid:20000000-0000-0000-0000-000000000001"),
            _post(
                {
                    **_hemoglobin("urn:uuid:20000000-0000-0000-0000-000000000001", 9.1),
                    "id": "other",
                },
                "urn:uuid:20000000-0000-0000-0000-000000000002",
            ),
        )
    )

    observations = stored.resources("Observation")
    tags: dict[str, list[str]] = {}
    for observation in observations:
        fact = [t["code"] for t in observation["meta"]["tag"] if t["system"] == "urn:health:fact"]
        tags.setdefault(fact[0], []).append(observation["meta"]["source"])
    assert sorted(len(sources_of_fact) for sources_of_fact in tags.values()) == [1, 2]
    linked = next(code for code, found in tags.items() if len(found) == 2)
    assert len(stored.resources(f"Observation?_tag=urn:health:fact|{linked}")) == 2


def test_pushing_the_same_thing_again_makes_new_versions_not_copies(
    sources: dict[str, Any],
) -> None:
    hospital = sources["hospital"]
    hospital.pushed(_push_of_karen("a", hemoglobin=13.2))
    again = hospital.pushed(_push_of_karen("a", hemoglobin=13.4))

    assert [e["response"]["status"] for e in again["entry"]] == ["200 OK", "200 OK"]
    observations = _resources(_search(hospital.client, hospital.headers, "Observation"))
    assert len(observations) == 1
    assert observations[0]["meta"]["versionId"] == "2"
    assert observations[0]["valueQuantity"]["value"] == 13.4
    assert len(_resources(_search(hospital.client, hospital.headers, "Patient"))) == 1


def test_a_push_names_its_source_and_records_provenance(sources: dict[str, Any]) -> None:
    hospital = sources["hospital"]
    response = hospital.pushed(_push_of_karen("a"))
    written = {e["response"]["location"] for e in response["entry"]}

    provenances = _resources(_search(hospital.client, hospital.headers, "Provenance"))
    assert len(provenances) == 1
    provenance = provenances[0]
    assert {t["reference"] for t in provenance["target"]} == written
    assert provenance["agent"][0]["who"] == {
        "reference": f"Organization/{hospital.organization_id}"
    }
    patient = _resources(_search(hospital.client, hospital.headers, "Patient"))[0]
    # The Provenance is part of Karen's record.
    everything = hospital.client.get(
        f"/fhir/Patient/{patient['id']}/$everything", headers=hospital.headers
    ).json()
    assert "Provenance" in {e["resource"]["resourceType"] for e in everything["entry"]}


def test_the_source_is_the_token_not_what_the_bundle_claims(sources: dict[str, Any]) -> None:
    hospital = sources["hospital"]
    claimed = _push_of_karen("a")
    claimed["entry"][1]["resource"]["meta"] = {"source": "http://elsewhere.example/fhir"}
    hospital.pushed(claimed)

    observation = _resources(_search(hospital.client, hospital.headers, "Observation"))[0]
    assert observation["meta"]["source"] == hospital.uri


def test_shared_directory_resources_are_kept_once(sources: dict[str, Any]) -> None:
    organization = {
        "resourceType": "Organization",
        "identifier": [{"system": "urn:oid:1.2.208.176.1.1", "value": "123456789"}],
        "name": "Rigshospitalet",
    }
    for name, source in sources.items():
        source.pushed(_bundle(_post({**organization, "id": f"org-{name}"})))
        source.pushed(_bundle(_post({**organization, "id": f"org-{name}"})))

    found = _resources(
        _search(
            sources["gp"].client,
            sources["gp"].headers,
            "Organization?identifier=urn:oid:1.2.208.176.1.1|123456789",
        )
    )
    assert len(found) == 1


def test_a_patient_without_a_national_id_is_refused_and_nothing_is_written(
    sources: dict[str, Any],
) -> None:
    hospital = sources["hospital"]
    response = hospital.push(_push_of_karen("a", cpr=None))

    assert response.status_code == 422
    issue = response.json()["issue"][0]
    assert issue["expression"] == ["Bundle.entry[0].resource.identifier"]
    assert "national ID" in issue["diagnostics"]
    assert _search(hospital.client, hospital.headers, "Observation")["total"] == 0
    assert _search(hospital.client, hospital.headers, "Provenance")["total"] == 0


def test_a_patient_with_two_national_ids_is_refused(sources: dict[str, Any]) -> None:
    hospital = sources["hospital"]
    response = hospital.push(
        _push_of_karen("a", identifier=[{"system": BSN, "value": "123456782"}])
    )

    assert response.status_code == 422
    assert "more than one national ID" in response.json()["issue"][0]["diagnostics"]
    assert _search(hospital.client, hospital.headers, "Patient")["total"] == 0


def test_a_batch_answers_the_refused_patient_on_its_own(sources: dict[str, Any]) -> None:
    hospital = sources["hospital"]
    bundle = _push_of_karen("a", cpr=None)
    bundle["type"] = "batch"
    response = hospital.pushed(bundle)

    statuses = [e["response"]["status"] for e in response["entry"]]
    assert statuses[0].startswith("422")
    assert statuses[1].startswith("4")  # its urn:uuid reference leads nowhere in a batch
    assert _search(hospital.client, hospital.headers, "Observation")["total"] == 0
    assert _search(hospital.client, hospital.headers, "Patient")["total"] == 0


def test_a_later_push_without_an_address_keeps_the_known_one(sources: dict[str, Any]) -> None:
    hospital, gp = sources["hospital"], sources["gp"]
    hospital.pushed(_push_of_karen("a", address=[{"city": "København"}]))
    gp.pushed(_push_of_karen("b", telecom=[{"system": "phone", "value": "+45 12345678"}]))

    karen = _resources(_search(gp.client, gp.headers, "Patient"))[0]
    assert karen["address"] == [{"city": "København"}]
    assert karen["telecom"] == [{"system": "phone", "value": "+45 12345678"}]
    assert karen["meta"]["source"] == gp.uri


def test_a_clinicians_app_writes_without_the_push_rules(client: TestClient) -> None:
    # Person matching is for sources; a clinician's app writes plain FHIR.
    response = client.post(
        "/fhir",
        json=_bundle(_post({"resourceType": "Patient"})),
        headers={"Content-Type": "application/fhir+json"},
    )
    assert response.status_code == 200


@pytest.mark.parametrize("kind", ["batch", "transaction"])
def test_literal_references_to_the_sources_own_ids_find_what_it_pushed(
    sources: dict[str, Any], kind: str
) -> None:
    """Bulk data refers by `Type/id` in the source's id space, across pushes."""
    hospital, gp = sources["hospital"], sources["gp"]
    encounter = {
        "resourceType": "Encounter",
        "id": "e1",
        "status": "finished",
        "class": {"code": "AMB"},
        "subject": {"reference": "Patient/p1"},
    }
    hospital.pushed(_bundle(_post({**_patient(), "id": "p1"}), _post(encounter), kind=kind))
    # The GP uses the same ids for its own, different resources.
    gp.pushed(_bundle(_post({**_patient(), "id": "e1"}), kind="batch"))
    later = {**_hemoglobin("Patient/p1", 12.0), "encounter": {"reference": "Encounter/e1"}}
    hospital.pushed(_bundle(_post(later), kind="batch"))

    karen = _resources(_search(hospital.client, hospital.headers, "Patient"))
    assert len(karen) == 1
    observation = _resources(_search(hospital.client, hospital.headers, "Observation"))[0]
    assert observation["subject"] == {"reference": f"Patient/{karen[0]['id']}"}
    stored_encounter = _resources(_search(hospital.client, hospital.headers, "Encounter"))[0]
    assert observation["encounter"] == {"reference": f"Encounter/{stored_encounter['id']}"}
    assert stored_encounter["subject"] == {"reference": f"Patient/{karen[0]['id']}"}


# One resource at a time: the same rules as a Bundle of one entry


def test_a_single_patient_create_by_a_source_is_matched_to_the_citizen(
    sources: dict[str, Any], stored: StoredRecords
) -> None:
    hospital, gp = sources["hospital"], sources["gp"]
    first = hospital.client.post("/fhir/Patient", json=_patient(), headers=hospital.headers)
    second = gp.client.post(
        "/fhir/Patient",
        json=_patient(identifier=[{"system": "urn:gp:id", "value": "9"}]),
        headers=gp.headers,
    )

    assert first.status_code == 201, first.text
    assert second.status_code == 200  # the citizen's Patient, updated
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["meta"]["source"] == gp.uri
    assert stored.total("Provenance") == 2


def test_a_single_patient_without_a_national_id_is_refused_naming_the_element(
    sources: dict[str, Any],
) -> None:
    hospital = sources["hospital"]
    response = hospital.client.post(
        "/fhir/Patient", json=_patient(cpr=None), headers=hospital.headers
    )

    assert response.status_code == 422
    assert response.json()["issue"][0]["expression"] == ["Patient.identifier"]
    assert _search(hospital.client, hospital.headers, "Patient")["total"] == 0


def test_a_source_updates_and_deletes_by_its_own_ids(sources: dict[str, Any]) -> None:
    hospital = sources["hospital"]
    hospital.pushed(_push_of_karen("a", hemoglobin=13.2))
    karen = _resources(_search(hospital.client, hospital.headers, "Patient"))[0]

    updated = hospital.client.put(
        "/fhir/Observation/obs-a",
        json={**_hemoglobin("Patient/p-a", 13.9), "id": "obs-a"},
        headers=hospital.headers,
    )
    assert updated.status_code == 200, updated.text
    observation = updated.json()
    assert observation["meta"]["versionId"] == "2"
    assert observation["subject"] == {"reference": f"Patient/{karen['id']}"}

    # By its own id, or by ours (the Location it was given): the same resource.
    assert (
        hospital.client.delete("/fhir/Observation/obs-a", headers=hospital.headers).status_code
        == 204
    )
    assert _search(hospital.client, hospital.headers, "Observation")["total"] == 0
    hospital.pushed(_push_of_karen("a", hemoglobin=13.2))
    ours = _resources(_search(hospital.client, hospital.headers, "Observation"))[0]["id"]
    deleted = hospital.client.delete(f"/fhir/Observation/{ours}", headers=hospital.headers)
    assert deleted.status_code == 204
    assert _search(hospital.client, hospital.headers, "Observation")["total"] == 0


def test_provenance_is_written_whatever_the_sources_scopes(
    anonymous_client: TestClient, issue_token: Any, stored: StoredRecords
) -> None:
    # v1 write (cud): no search, no Provenance. The server matches the Patient and
    # records the push itself; neither needs a scope of the source.
    token = issue_token(
        scope="system/*.write",
        actor_kind="client",
        client_id="narrow-client",
        organization_id="narrow-organization",
    )
    headers = {"Content-Type": "application/fhir+json", "Authorization": f"Bearer {token}"}
    response = anonymous_client.post("/fhir", json=_push_of_karen("a"), headers=headers)

    assert response.status_code == 200, response.text
    (provenance,) = stored.resources("Provenance")
    assert provenance["agent"][0]["who"] == {"reference": "Organization/narrow-organization"}


def test_a_source_is_shown_of_the_citizens_patient_only_what_it_reported(
    sources: dict[str, Any], stored: StoredRecords
) -> None:
    """Another hospital's record number would tell a source where else the citizen is
    treated (health/access/attribution.py): every way a source reads the Patient back
    shows it only its own identifiers, and the citizen's record keeps them all."""
    hospital, gp = sources["hospital"], sources["gp"]
    hospital.pushed(_push_of_karen("a", identifier=[{"system": "urn:rh:mrn", "value": "RH-1"}]))
    gp_push = _push_of_karen(
        "b",
        identifier=[{"system": "urn:gp:id", "value": "GP-7"}],
        generalPractitioner=[{"reference": f"Organization/{gp.organization_id}"}],
    )
    answer = gp.client.post(
        "/fhir", json=gp_push, headers={**gp.headers, "Prefer": "return=representation"}
    )
    assert answer.status_code == 200, answer.text

    hospital_sees = {
        (CPR, "0101801234"),
        ("urn:rh:mrn", "RH-1"),
        (f"{hospital.uri}/patient-id", "p-a"),
    }
    gp_sees = {(CPR, "0101801234"), ("urn:gp:id", "GP-7"), (f"{gp.uri}/patient-id", "p-b")}
    (karen,) = stored.resources(f"Patient?identifier={CPR}|0101801234")
    assert {(i["system"], i["value"]) for i in karen["identifier"]} == hospital_sees | gp_sees

    def identifiers(patient: dict[str, Any]) -> set[tuple[str, str]]:
        assert all("extension" not in i for i in patient["identifier"])
        return {(i["system"], i["value"]) for i in patient["identifier"]}

    def reads(source: Any) -> list[dict[str, Any]]:
        get = source.client.get
        everything = get(f"/fhir/Patient/{karen['id']}/$everything", headers=source.headers)
        history = get(f"/fhir/Patient/{karen['id']}/_history", headers=source.headers)
        return [
            get(f"/fhir/Patient/{karen['id']}", headers=source.headers).json(),
            get(f"/fhir/Patient/{karen['id']}/_history/2", headers=source.headers).json(),
            *_resources(_search(source.client, source.headers, "Patient")),
            *[
                e["resource"]
                for e in everything.json()["entry"]
                if e["resource"]["resourceType"] == "Patient"
            ],
            *[e["resource"] for e in history.json()["entry"]],
        ]

    for patient in reads(hospital):
        assert identifiers(patient) == hospital_sees
        assert "generalPractitioner" not in patient
        assert patient["meta"].get("source") in (None, hospital.uri)  # version 1 was its own
    for patient in reads(gp)[:3]:
        assert identifiers(patient) == gp_sees
        assert patient["generalPractitioner"] == [
            {"reference": f"Organization/{gp.organization_id}"}
        ]
    # The push's own answer is a read back as well.
    (returned,) = [
        e["resource"] for e in answer.json()["entry"] if e["resource"]["resourceType"] == "Patient"
    ]
    assert identifiers(returned) == gp_sees


def test_a_sources_own_condition_does_not_match_another_sources_copy(
    sources: dict[str, Any], stored: StoredRecords
) -> None:
    """If-None-Exist from a source is its own condition: another source's resource with
    the same identifier is neither matched (each source's copy is kept) nor shown."""
    hospital, gp = sources["hospital"], sources["gp"]
    for source in (hospital, gp):  # each calls her p-1 (references use a source's own ids)
        source.client.post("/fhir/Patient", json=_patient(id="p-1"), headers=source.headers)
    result = {
        **_hemoglobin("Patient/p-1", 13.2),
        "identifier": [{"system": "urn:lab:sample", "value": "S-1"}],
    }
    condition = {"If-None-Exist": "identifier=urn:lab:sample|S-1"}

    first = hospital.client.post(
        "/fhir/Observation", json=result, headers={**hospital.headers, **condition}
    )
    second = gp.client.post(
        "/fhir/Observation",
        json={**result, "valueQuantity": {**result["valueQuantity"], "value": 9.1}},
        headers={**gp.headers, **condition},
    )

    assert first.status_code == 201, first.text
    assert second.status_code == 201, second.text
    assert second.json()["valueQuantity"]["value"] == 9.1
    assert stored.total("Observation?identifier=urn:lab:sample|S-1") == 2
    again = gp.client.post("/fhir/Observation", json=result, headers={**gp.headers, **condition})
    assert (again.status_code, again.json()["id"]) == (200, second.json()["id"])


RH_MRN = "urn:rh:mrn"


@pytest.fixture
def karen_at_both(sources: dict[str, Any]) -> None:
    """The hospital knows Karen as RH-1 and names her GP; the GP knows her as G-7."""
    hospital, gp = sources["hospital"], sources["gp"]
    hospital.pushed(
        _push_of_karen(
            "a",
            identifier=[{"system": RH_MRN, "value": "RH-1"}],
            generalPractitioner=[{"reference": f"Organization/{gp.organization_id}"}],
        )
    )
    gp.pushed(_push_of_karen("b", identifier=[{"system": "urn:gp:id", "value": "G-7"}]))


@pytest.mark.usefixtures("karen_at_both")
@pytest.mark.parametrize(
    "query",
    [
        "Patient?identifier=RH-1",
        "Patient?identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|RH-1",
        "Patient?identifier:missing=false",
        "Patient?general-practitioner:missing=false",
        "Patient?organization:missing=false",
        "Patient?_source=http://testserver/fhir/Organization/hospital",
        "Patient?_sort=identifier",
        f"Observation?subject.identifier={RH_MRN}|RH-1",
        f"Patient?_has:Patient:link:identifier={RH_MRN}|RH-1",
        f"Organization?_has:Patient:general-practitioner:identifier={CPR}|0101801234",
        "Organization?_revinclude=Patient:general-practitioner",
        "Organization?_revinclude=Patient:*",
    ],
)
def test_a_source_may_not_search_what_other_sources_reported(
    sources: dict[str, Any], query: str
) -> None:
    """Whether another hospital's number finds the citizen tells where she is treated."""
    gp = sources["gp"]

    response = gp.client.get(f"/fhir/{query}", headers=gp.headers)

    assert response.status_code == 403, response.text
    assert "national ID" in response.json()["issue"][0]["diagnostics"]


@pytest.mark.usefixtures("karen_at_both")
def test_a_source_finds_the_citizen_by_national_id(sources: dict[str, Any]) -> None:
    gp = sources["gp"]

    found = _resources(_search(gp.client, gp.headers, f"Patient?identifier={CPR}|0101801234"))

    assert [p["name"][0]["given"] for p in found] == [["Karen"]]


@pytest.mark.usefixtures("karen_at_both")
def test_a_source_finds_the_citizen_by_its_own_number_and_not_by_anothers(
    sources: dict[str, Any],
) -> None:
    """The hospital's number finds nothing for the GP, exactly as an unknown number."""
    hospital, gp = sources["hospital"], sources["gp"]

    by_own = _resources(
        _search(hospital.client, hospital.headers, f"Patient?identifier={RH_MRN}|RH-1")
    )
    gp_by_own = _resources(_search(gp.client, gp.headers, "Patient?identifier=urn:gp:id|G-7"))
    guessed = _search(gp.client, gp.headers, f"Patient?identifier={RH_MRN}|RH-1")
    unknown = _search(gp.client, gp.headers, f"Patient?identifier={RH_MRN}|RH-999")

    assert [p["id"] for p in by_own] == [p["id"] for p in gp_by_own]
    assert {"system": RH_MRN, "value": "RH-1"} in by_own[0]["identifier"]
    assert {"system": RH_MRN, "value": "RH-1"} not in gp_by_own[0]["identifier"]
    # The same answer as to a number nobody reported, but for the self link, which
    # shows the search as the client wrote it.
    assert {**guessed, "link": None, "id": None} == {**unknown, "link": None, "id": None}
    assert (guessed["total"], "entry" in guessed) == (0, False)
    assert unquote(guessed["link"][0]["url"]).endswith(f"Patient?identifier={RH_MRN}|RH-1")


@pytest.mark.usefixtures("karen_at_both")
def test_a_sources_chain_to_the_citizen_goes_by_its_own_number(
    sources: dict[str, Any],
) -> None:
    """`subject:Patient.identifier=` by the GP's number finds the GP's result; by the
    hospital's, not even the GP's own result for the same citizen."""
    gp = sources["gp"]
    gp.pushed(_bundle(_post(_hemoglobin("Patient?identifier=urn:gp:id|G-7", 9.1))))
    chain = "Observation?subject:Patient.identifier="

    own = _resources(_search(gp.client, gp.headers, f"{chain}urn:gp:id|G-7"))
    guessed = _resources(_search(gp.client, gp.headers, f"{chain}{RH_MRN}|RH-1"))
    by_cpr = _resources(_search(gp.client, gp.headers, f"{chain}{CPR}|0101801234"))

    assert sorted(o["valueQuantity"]["value"] for o in own) == [9.1, 13.2]
    assert guessed == []
    assert by_cpr == own


@pytest.mark.usefixtures("karen_at_both")
def test_a_sources_condition_matches_only_by_its_own_identifiers(
    sources: dict[str, Any], stored: StoredRecords
) -> None:
    """A conditional reference by another hospital's number resolves to nothing, as if
    the number were unknown; by the source's own number it resolves."""
    hospital, gp = sources["hospital"], sources["gp"]
    (karen,) = stored.resources(f"Patient?identifier={CPR}|0101801234")

    guessed = gp.push(_bundle(_post(_hemoglobin(f"Patient?identifier={RH_MRN}|RH-1", 9.0))))
    own = gp.pushed(_bundle(_post(_hemoglobin("Patient?identifier=urn:gp:id|G-7", 9.1))))
    theirs = hospital.pushed(_bundle(_post(_hemoglobin(f"Patient?identifier={RH_MRN}|RH-1", 9.2))))

    assert guessed.status_code == 400, guessed.text
    assert "matches no resource" in guessed.json()["issue"][0]["diagnostics"]
    for source, answer in ((gp, own), (hospital, theirs)):
        (entry,) = answer["entry"]
        location = entry["response"]["location"].split("/_history")[0]
        result = source.client.get(f"/fhir/{location}", headers=source.headers).json()
        assert result["subject"] == {"reference": f"Patient/{karen['id']}"}


def test_no_source_may_delete_or_patch_the_citizens_one_patient(
    sources: dict[str, Any], stored: StoredRecords
) -> None:
    hospital, gp = sources["hospital"], sources["gp"]
    hospital.pushed(_push_of_karen("a", identifier=[{"system": "urn:rh:mrn", "value": "RH-1"}]))
    gp.pushed(_push_of_karen("b"))
    (karen,) = stored.resources(f"Patient?identifier={CPR}|0101801234")
    patch_headers = {**hospital.headers, "Content-Type": "application/json-patch+json"}

    deleted = hospital.client.delete(f"/fhir/Patient/{karen['id']}", headers=hospital.headers)
    patched = hospital.client.patch(
        f"/fhir/Patient/{karen['id']}",
        json=[{"op": "remove", "path": "/identifier"}],
        headers=patch_headers,
    )

    assert (deleted.status_code, patched.status_code) == (403, 403)
    assert "shared by every source" in deleted.json()["issue"][0]["diagnostics"]
    (after,) = stored.resources(f"Patient?identifier={CPR}|0101801234")
    assert after["meta"]["versionId"] == karen["meta"]["versionId"]


def test_a_source_may_refer_to_the_citizen_by_the_id_our_answer_gave(
    sources: dict[str, Any], stored: StoredRecords
) -> None:
    """A FHIR client creates the Patient, then refers to it by the id in the answer."""
    hospital, gp = sources["hospital"], sources["gp"]
    created = hospital.client.post("/fhir/Patient", json=_patient(), headers=hospital.headers)
    karen_id = created.json()["id"]

    result = hospital.client.post(
        "/fhir/Observation", json=_hemoglobin(f"Patient/{karen_id}", 13.2), headers=hospital.headers
    )
    # A source that never recorded anything for her cannot write into her record by id.
    stranger = gp.client.post(
        "/fhir/Observation", json=_hemoglobin(f"Patient/{karen_id}", 9.1), headers=gp.headers
    )

    # And in a Bundle, transaction or batch.
    for kind in ("transaction", "batch"):
        bundle = _bundle(_post(_hemoglobin(f"Patient/{karen_id}", 12.0)), kind=kind)
        answer = hospital.pushed(bundle)
        assert answer["entry"][0]["response"]["status"].startswith("201"), answer

    assert result.status_code == 201, result.text
    assert result.json()["subject"] == {"reference": f"Patient/{karen_id}"}
    assert stored.total(f"Observation?subject=Patient/{karen_id}") == 3
    assert stranger.status_code == 400
    assert stranger.json()["issue"][0]["expression"] == ["Observation.subject.reference"]


def test_everything_shows_a_source_only_the_directory_its_own_records_name(
    sources: dict[str, Any], stored: StoredRecords
) -> None:
    """The ward another hospital's encounter names would tell where she was treated."""
    hospital, gp = sources["hospital"], sources["gp"]
    ward = {
        "resourceType": "Organization",
        "identifier": [{"system": "urn:test:org", "value": "psychiatry"}],
        "name": "Psychiatric ward",
    }
    patient_url = "urn:uuid:00000000-0000-0000-0000-00000000000a"
    hospital.pushed(
        _bundle(
            _post({**_patient(), "id": "p-a"}, patient_url),
            _post(ward, "urn:uuid:20000000-0000-0000-0000-000000000001"),
            _post(
                {
                    "resourceType": "Encounter",
                    "id": "enc-a",
                    "status": "finished",
                    "class": {"code": "IMP"},
                    "subject": {"reference": patient_url},
                    "serviceProvider": {
                        "reference": "urn:uuid:20000000-0000-0000-0000-000000000001"
                    },
                },
                "urn:uuid:20000000-0000-0000-0000-000000000002",
            ),
        )
    )
    gp.pushed(_push_of_karen("b"))
    (karen,) = stored.resources(f"Patient?identifier={CPR}|0101801234")

    def names(source: Any) -> set[str]:
        answer = source.client.get(
            f"/fhir/Patient/{karen['id']}/$everything", headers=source.headers
        )
        assert answer.status_code == 200, answer.text
        return {
            e["resource"].get("name")
            for e in answer.json()["entry"]
            if e["resource"]["resourceType"] == "Organization"
        }

    assert "Psychiatric ward" in names(hospital)
    assert "Psychiatric ward" not in names(gp)


@pytest.fixture
def karen(
    sources: dict[str, Any], stored: StoredRecords, app: FastAPI, database: Database
) -> dict[str, Any]:
    """Karen's Patient, on which the hospital named the clinic Lægehuset Nord as her GP
    and the GP practice, which pushed her too, named none."""
    clinic = {"resourceType": "Organization", "id": "clinic-nord", "name": "Lægehuset Nord"}
    with database.session(write=True) as session:
        interactions = Interactions(Repository.system(session), app.state.fhir_config)
        interactions.update(
            "clinic-nord", check(clinic, "Organization", app.state.fhir_config.types)
        )
        interactions.flush()
    sources["hospital"].pushed(
        _push_of_karen("a", generalPractitioner=[{"reference": "Organization/clinic-nord"}])
    )
    sources["gp"].pushed(_push_of_karen("b"))
    (patient,) = stored.resources(f"Patient?identifier={CPR}|0101801234")
    return patient


def test_everything_lists_for_a_source_the_organisations_it_named_on_the_patient(
    sources: dict[str, Any], karen: dict[str, Any]
) -> None:
    """The GP a source named on the citizen's Patient is in its $everything, as the
    Patient it is shown names it; a source that did not name it is not shown it: the
    index rows of the Patient's references are hidden from every source
    (Repository._hidden_references), and only its own values lead anywhere."""
    hospital, gp = sources["hospital"], sources["gp"]

    def listed(source: Any) -> dict[str, dict[str, Any]]:
        answer = source.client.get(
            f"/fhir/Patient/{karen['id']}/$everything", headers=source.headers
        )
        assert answer.status_code == 200, answer.text
        return {
            f"{e['resource']['resourceType']}/{e['resource']['id']}": e["resource"]
            for e in answer.json()["entry"]
        }

    at_hospital, at_gp = listed(hospital), listed(gp)
    assert "Organization/clinic-nord" in at_hospital
    # Page by page (a keyset over the record and these keys) it comes once.
    paged: list[str] = []
    url: str | None = f"/fhir/Patient/{karen['id']}/$everything?_count=1"
    for _ in range(len(at_hospital) + 1):
        if url is None:
            break
        page = hospital.client.get(url, headers=hospital.headers)
        assert page.status_code == 200, page.text
        paged += [
            f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in page.json()["entry"]
        ]
        url = next(
            (link["url"] for link in page.json()["link"] if link["relation"] == "next"), None
        )
    assert sorted(paged) == sorted(at_hospital)
    assert at_hospital[f"Patient/{karen['id']}"]["generalPractitioner"] == [
        {"reference": "Organization/clinic-nord"}
    ]
    assert "Organization/clinic-nord" not in at_gp
    assert "generalPractitioner" not in at_gp[f"Patient/{karen['id']}"]


def test_a_sources_include_from_the_patient_follows_only_what_it_reported(
    sources: dict[str, Any], karen: dict[str, Any]
) -> None:
    """A source's `_include=Patient:general-practitioner` adds the GP it named on the
    citizen's Patient; a source that did not name it is not given it: the include
    follows the Patient as the source is shown it (source_search.shown_references),
    not the index, which holds every source's references. So does `:iterate` from a
    Patient an earlier rule added."""
    hospital, gp = sources["hospital"], sources["gp"]

    def included(source: Any, query: str) -> set[str]:
        return {
            f"{e['resource']['resourceType']}/{e['resource']['id']}"
            for e in _search(source.client, source.headers, query).get("entry", [])
            if e["search"]["mode"] == "include"
        }

    by_cpr = f"Patient?identifier={CPR}|0101801234"
    for rule in ("general-practitioner", "general-practitioner:Organization", "*"):
        query = f"{by_cpr}&_include=Patient:{rule}"
        assert included(hospital, query) == {"Organization/clinic-nord"}, rule
        assert included(gp, query) == set(), rule
    assert included(hospital, f"{by_cpr}&_include=Patient:general-practitioner:Practitioner") == (
        set()
    )
    through_results = (
        f"Observation?code={LOINC}|718-7&_include=Observation:subject"
        "&_include:iterate=Patient:general-practitioner"
    )
    assert included(hospital, through_results) == {
        f"Patient/{karen['id']}",
        "Organization/clinic-nord",
    }
    assert included(gp, through_results) == {f"Patient/{karen['id']}"}
